"""The retry schedule and lifetime expiry in a real ``mailpipe serve`` on RabbitMQ, with a fast schedule.

``retry_first = 0.5`` s, ``retry_max = 1`` s and ``max_lifetime = 10`` s: the
scheduler (ticking every second) republishes deferred entries from the spool,
so a receiver answering 451 twice is delivered on the third attempt, and a
destination that never answers is given up after the lifetime with a DSN.
"""

from __future__ import annotations

import json
import smtplib
import uuid

import pytest

from tests.relay_e2e.conftest import add_to_section, relay_toml
from tests.support import ServeProcess, drop_vhost, rabbitmq_vhost, wait_for

pytestmark = pytest.mark.slow

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory, dns_server, relay_port, receiver):
    vhost = rabbitmq_vhost()
    tmp = tmp_path_factory.mktemp("serve-fast")
    srv = ServeProcess(tmp, broker_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                       extra_toml=relay_toml(dns_server, relay_port, retry_first=0.5, retry_max=1.0,
                                             max_lifetime=10.0))
    try:
        add_to_section(srv.config, "ingress", 'trusted_networks = ["127.0.0.1/32"]')
        srv.cli("domain", "add", "example.test")
        srv.cli("user", "add", ALICE, "--password-stdin", input=b"pw")
        srv.start()
        warm_up(srv)
        yield srv
    finally:
        srv.stop()
        drop_vhost(vhost)


def warm_up(srv: ServeProcess) -> None:
    """Wait until a worker runs (a local delivery went through), so lifetimes count from a live system."""
    send(srv, ALICE)
    wait_for(lambda: srv.delivered(ALICE), 60, what="worker up (warm-up delivery)")


def send(srv: ServeProcess, to: str) -> tuple[str, str]:
    mid = f"<{uuid.uuid4().hex}@example.test>"
    body = f"From: {ALICE}\r\nTo: {to}\r\nSubject: retry\r\nMessage-ID: {mid}\r\n\r\nhello\r\n".encode()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.example.test")
        smtp.mail(ALICE)
        assert smtp.rcpt(to)[0] == 250
        code, reply = smtp.data(body)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1], mid


def done_entry(srv: ServeProcess, qid: str) -> dict | None:
    path = srv.data_dir / "spool" / "done" / f"{qid}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_451_twice_then_250_is_delivered_on_the_third_attempt(server, receiver):
    receiver.data_replies[:] = ["451 4.3.0 busy, try later", "451 4.3.0 busy, try later"]
    qid, mid = send(server, "x@flaky.test")
    done = wait_for(lambda: done_entry(server, qid), 60, what="delivery after two 451s")
    rcpt = done["recipients"][0]
    assert rcpt["status"] == "delivered" and rcpt["attempts"] == 3
    assert [e["event"] for e in done["trace"] if e["stage"] == "remote"].count("deferred") == 2
    assert len([m for m in receiver.messages if mid.encode() in m.content]) == 1
    assert receiver.data_replies == []


def test_lifetime_expiry_bounces_to_the_local_sender(server):
    qid, _ = send(server, "z@dead.test")
    done = wait_for(lambda: done_entry(server, qid), 60, what="expiry")
    rcpt = done["recipients"][0]
    assert rcpt["status"] == "failed" and rcpt["detail"].startswith("5.4.7 message expired")
    assert "Connection refused" in rcpt["detail"]                    # the last error is kept
    assert rcpt["attempts"] >= 2
    def dsn():
        return [p.read_bytes() for p in server.delivered(ALICE) if qid.encode() in p.read_bytes()
                and b"multipart/report" in p.read_bytes()]
    [report] = wait_for(dsn, 30, what="DSN in alice's Maildir")
    assert b"Final-Recipient: rfc822; z@dead.test" in report
    assert b"Status: 5.4.7" in report and b"Action: failed" in report
