"""``mailpipe serve`` on the PostgreSQL spool, end to end: real SMTP in (smtplib), the
embedded broker, real workers, Maildir out; ``mailpipe queue`` reads the same database.

Each message must arrive exactly once (counted by Message-ID in the Maildirs), its spool
row must be finished, and nothing may be written to the filesystem spool.
"""

from __future__ import annotations

import email
import json
import smtplib
from collections import Counter

import pytest
from sqlalchemy import create_engine, text

from tests.spool.pgdb import throwaway_database
from tests.support import ServeProcess, add_accounts, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MESSAGES = 30


@pytest.fixture
def server(tmp_path):
    with throwaway_database("mptest_serve") as url:
        srv = ServeProcess(tmp_path)
        srv.config.write_text(f'spool_url = "{url}"\n' + srv.config.read_text())
        srv.url = url
        add_accounts(srv.data_dir, "example.test", ["alice", "bob"])
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


def send(port: int, n: int, rcpts: list[str]) -> None:
    body = (f"From: carol@remote.test\r\nTo: {', '.join(rcpts)}\r\nSubject: m{n}\r\n"
            f"Message-ID: <m{n}@remote.test>\r\n\r\nmessage {n}\r\n").encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        refused = smtp.sendmail("carol@remote.test", rcpts, body)
    assert refused == {}


def message_ids(srv: ServeProcess, address: str) -> Counter[str]:
    return Counter(email.message_from_bytes(p.read_bytes())["Message-ID"] for p in srv.delivered(address))


def test_serve_on_the_pg_spool_delivers_each_message_once(server):
    for n in range(MESSAGES):
        send(server.smtp_port, n, ["alice@example.test"] + (["bob@example.test"] if n % 3 == 0 else []))
    wait_for(lambda: sum(message_ids(server, "alice@example.test").values()) >= MESSAGES, 60, what="alice's mail")
    wait_for(lambda: sum(message_ids(server, "bob@example.test").values()) >= MESSAGES // 3, 60, what="bob's mail")
    assert message_ids(server, "alice@example.test") == Counter({f"<m{n}@remote.test>": 1 for n in range(MESSAGES)})
    assert message_ids(server, "bob@example.test") == Counter({f"<m{n}@remote.test>": 1
                                                              for n in range(0, MESSAGES, 3)})
    wait_for(lambda: json.loads(server.cli("queue", "list", "--json").stdout) == [], 30, what="an empty queue")
    engine = create_engine(server.url)
    with engine.connect() as conn:
        states = dict(conn.execute(text("SELECT state, count(*) FROM spool_entry GROUP BY state")).all())
        bodies = conn.execute(text("SELECT count(*) FROM spool_entry WHERE body IS NOT NULL")).scalar()
    engine.dispose()
    assert states == {"done": MESSAGES} and bodies == 0
    status = json.loads(server.cli("queue", "status", "--json").stdout)
    assert status["spool"] == {"active": 0, "deferred": 0, "hold": 0, "quarantine": 0, "dead": 0}
    assert {q["queue"] for q in status["queues"]} >= {"smtp_in", "local"}
    fs_queue = server.data_dir / "spool" / "queue"
    assert not fs_queue.exists() or list(fs_queue.iterdir()) == []
