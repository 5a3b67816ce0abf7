"""The local stage per mail host (pure: an in-memory directory, the filesystem spool in tmp_path).

Which mail host's stage comes next after route and after each mail host, and that each
delivers only its own users' mailboxes, an alias spanning hosts included.
"""

from __future__ import annotations

from mailpipe.core.clock import FakeClock
from mailpipe.core.config import Config
from mailpipe.mailstore.directory import MemoryDirectory
from mailpipe.spool.model import Entry, Recipient
from mailpipe.workers.runtime import Runtime
from mailpipe.workers.stages import local

HOSTS = {"alice": None, "bob": "mh1", "carol": "mh2"}


def runtime(tmp_path, served: frozenset[str]) -> Runtime:
    directory = MemoryDirectory(("example.test",))
    for user, host in HOSTS.items():
        directory.add_user(f"{user}@example.test", "pw", mail_host=host)
    directory.add_alias("team@example.test", "alice@example.test")
    directory.add_alias("team@example.test", "carol@example.test")
    return Runtime(Config(data_dir=tmp_path / "data"), publish=lambda *a, **k: None, served=served,
                   clock=FakeClock(), directory=directory)


def routed(*rcpts: tuple[str, list[str]]) -> Entry:
    return Entry(id="0123456789ABCDEF", sender="s@remote.test", received_at=1.0, size=20, stage="route",
                 recipients=[Recipient(address=a, route="local", mailboxes=m) for a, m in rcpts])


def delivered_to(tmp_path, user: str) -> int:
    new = tmp_path / "data" / "mail" / "example.test" / user / "Maildir" / "new"
    return len(list(new.iterdir())) if new.is_dir() else 0


def test_each_mail_host_in_turn_delivers_only_its_own_mailboxes(tmp_path):
    rt = runtime(tmp_path, frozenset({"route"}))
    entry = routed(("carol@example.test", ["carol@example.test"]),
                   ("team@example.test", ["alice@example.test", "carol@example.test"]),
                   ("bob@example.test", ["bob@example.test"]))
    pipeline = rt.pipeline
    assert pipeline.next_stage(entry, "route") == "local.mh2"          # recipient order
    visited = []
    stage = pipeline.next_stage(entry, "route")
    for _ in range(5):                                                  # bounded
        if stage is None or not stage.startswith("local"):
            break
        visited.append(stage)
        entry.stage = stage
        local.run(rt, entry, b"Subject: x\r\n\r\nbody\r\n", False)
        stage = pipeline.next_stage(entry, stage)
    assert visited == ["local.mh2", "local", "local.mh1"] and stage is None
    assert all(r.status == "delivered" for r in entry.recipients)
    # one filesystem here stands for three hosts: each mailbox exactly once (carol twice: two recipients)
    assert {u: delivered_to(tmp_path, u) for u in HOSTS} == {"alice": 1, "bob": 1, "carol": 1}
    assert [e.stage for e in entry.trace if e.event == "delivered"] == visited


def test_one_default_mail_host_keeps_todays_stage_and_queue(tmp_path):
    rt = runtime(tmp_path, frozenset({"route", "local"}))
    entry = routed(("alice@example.test", ["alice@example.test"]))
    assert rt.pipeline.next_stage(entry, "route") == "local"
    entry.stage = "local"
    local.run(rt, entry, b"\r\nbody\r\n", False)
    assert rt.pipeline.next_stage(entry, "local") is None and entry.recipients[0].status == "delivered"
