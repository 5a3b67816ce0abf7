"""The pipeline in-process: stages, fusion, idempotency on the queue ID, poison messages, scheduler."""

from __future__ import annotations

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.ids import new_queue_id
from mailpipe.core.config import Config
from mailpipe.spool.model import Entry, Recipient, State
from tests.support import fast_directory
from mailpipe.workers.app import QUEUE_STAGES
from mailpipe.workers.runtime import Runtime
from mailpipe.workers.scheduler import Scheduler


class Published(list):
    def __call__(self, stage: str, qid: str, redelivered: bool = False) -> None:
        self.append((stage, qid) + (("redelivered",) if redelivered else ()))


@pytest.fixture
def rt(tmp_path):
    config = Config(data_dir=tmp_path, hostname="mx.example.test")
    directory = fast_directory(tmp_path)
    directory.add_domain("example.test")
    for user in ("alice", "carol", "dave"):
        directory.add_user(f"{user}@example.test", "pw")
    directory.add_alias("team@example.test", "carol@example.test")
    directory.add_alias("team@example.test", "dave@example.test")
    directory.add_alias("loop1@example.test", "loop2@example.test")
    directory.add_alias("loop2@example.test", "loop1@example.test")
    return Runtime(config, publish=Published(), served=frozenset(QUEUE_STAGES), clock=FakeClock(),
                   directory=directory)


def spool_message(rt, *rcpts: str, body: bytes = b"Subject: t\r\n\r\nhi\r\n") -> str:
    qid = new_queue_id()
    rt.spool.create(Entry(id=qid, sender="bob@remote.test", recipients=[Recipient(address=r) for r in rcpts],
                          size=len(body), received_at=rt.clock.now()), [body])
    return qid


def delivered(rt, user: str, folder: str = "") -> list:
    root = rt.config.data_dir / "mail" / "example.test" / user / "Maildir" / folder
    return sorted((root / "new").iterdir()) + sorted((root / "cur").iterdir()) if root.exists() else []


def test_all_stages_fused_in_one_task(rt):
    qid = spool_message(rt, "alice@example.test", "team@example.test")
    rt.pipeline.run(qid, "smtp_in")
    entry = rt.spool.load(qid)
    assert entry.state == State.DONE
    assert [e.stage for e in entry.trace] == ["smtp_in", "antivirus", "spam", "rules", "route", "local", "local"]
    assert [len(delivered(rt, u)) for u in ("alice", "carol", "dave")] == [1, 1, 1]
    assert rt.publish == []                                       # no broker hop at all


def test_hand_over_when_next_stage_is_served_elsewhere(rt):
    rt.pipeline.served = frozenset({"smtp_in", "antivirus"})
    qid = spool_message(rt, "alice@example.test")
    rt.pipeline.run(qid, "smtp_in")
    assert rt.publish == [("spam", qid)]
    assert rt.spool.load(qid).stage == "spam" and delivered(rt, "alice") == []


def test_redelivered_and_duplicate_tasks_never_deliver_twice(rt):
    qid = spool_message(rt, "alice@example.test")
    rt.pipeline.run(qid, "smtp_in")
    rt.pipeline.run(qid, "smtp_in")                               # duplicate task after completion
    assert len(delivered(rt, "alice")) == 1
    # a crash after delivery but before the spool save: the entry still says stage=local
    qid2 = spool_message(rt, "alice@example.test")
    entry = rt.spool.load(qid2)
    rt.pipeline.served = frozenset({"local"})
    entry.stage = "local"
    entry.recipients[0].route, entry.recipients[0].mailboxes = "local", ["alice@example.test"]
    rt.spool.save(entry)
    from mailpipe.workers.stages import local
    local.run(rt, entry, rt.spool.message(qid2), False)           # the delivery that "crashed"
    assert len(delivered(rt, "alice")) == 2
    first = delivered(rt, "alice")[-1]
    first.rename(first.parent.parent / "cur" / (first.name + ":2,S"))   # a reader moved it to cur/
    rt.pipeline.run(qid2, "local", redelivered=True)              # the redelivered task
    assert len(delivered(rt, "alice")) == 2
    done = rt.spool.load(qid2)
    assert done.state == State.DONE and done.redeliveries == 1


def test_poison_message_goes_dead_with_its_stage(rt):
    qid = spool_message(rt, "alice@example.test")
    entry = rt.spool.load(qid)
    entry.redeliveries = rt.config.pipeline.max_redeliveries          # it crashed the worker that often
    rt.spool.save(entry)
    rt.pipeline.run(qid, "smtp_in", redelivered=True)
    dead = rt.spool.load(qid)
    assert dead.state == State.DEAD and dead.stage == "smtp_in"
    assert "redelivered 5 times" in dead.last_error and delivered(rt, "alice") == []


def test_unexpected_exception_defers_and_only_repeated_crashes_move_to_dead(rt, monkeypatch):
    from mailpipe.workers import stages
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "rules", lambda *a: 1 / 0)
    qid = spool_message(rt, "alice@example.test")
    limit = rt.config.pipeline.max_redeliveries
    rt.pipeline.run(qid, "smtp_in")
    for n in range(1, limit):
        entry = rt.spool.load(qid)
        assert entry.state == State.DEFERRED and entry.stage == "rules", n
        assert entry.failures == n and f"unexpected error in stage rules ({n} of {limit})" == entry.last_error
        entry.state, entry.next_attempt = State.ACTIVE, None         # what the scheduler does when due
        rt.spool.save(entry)
        rt.pipeline.run(qid, "rules")
    dead = rt.spool.load(qid)
    assert dead.state == State.DEAD and dead.stage == "rules" and dead.failures == limit
    assert rt.spool.message(qid)                                  # the message is kept


def test_a_stage_that_fails_once_delivers_on_the_next_attempt(rt, monkeypatch):
    from mailpipe.workers import stages
    real = stages.STAGE_FUNCTIONS["rules"]
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug that the retry does not meet")
        return real(*args)
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "rules", flaky)
    qid = spool_message(rt, "alice@example.test")
    rt.pipeline.run(qid, "smtp_in")
    entry = rt.spool.load(qid)
    assert entry.state == State.DEFERRED and entry.failures == 1
    entry.state, entry.next_attempt = State.ACTIVE, None
    rt.spool.save(entry)
    rt.pipeline.run(qid, "rules")
    assert rt.spool.load(qid).state == State.DONE and len(delivered(rt, "alice")) == 1


def dsn_for(rt, qid: str) -> bytes:
    """The DSN the pipeline spooled and published for `qid` (exactly one)."""
    dsn_ids = [p[1] for p in rt.publish if p[0] == "smtp_in"]
    assert len(dsn_ids) == 1, rt.publish
    dsn = rt.spool.load(dsn_ids[0])
    assert dsn.sender == "" and dsn.is_bounce and [r.address for r in dsn.recipients] == ["bob@remote.test"]
    return rt.spool.message(dsn_ids[0])


def test_alias_loop_and_removed_user_fail_without_crash_and_bounce(rt):
    qid = spool_message(rt, "loop1@example.test")
    rt.pipeline.run(qid, "smtp_in")
    entry = rt.spool.load(qid)
    assert entry.state == State.DONE and entry.recipients[0].status == "failed"
    report = dsn_for(rt, qid)
    assert b"multipart/report" in report and b"loop1@example.test" in report and b"5.1.1" in report


def test_mail_loop_is_stopped(rt):
    body = b"".join(b"Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n" for _ in range(51)) + b"\r\nhi\r\n"
    qid = spool_message(rt, "alice@example.test", body=body)
    rt.pipeline.run(qid, "smtp_in")
    entry = rt.spool.load(qid)
    assert entry.recipients[0].status == "failed" and "5.4.6" in entry.recipients[0].detail
    assert delivered(rt, "alice") == []
    assert b"5.4.6" in dsn_for(rt, qid)


def test_remote_recipients_wait_deferred_and_scheduler_republishes_when_due(rt, monkeypatch):
    from mailpipe.workers import stages

    def unavailable(rt_, entry, message, recovering):          # relay is its own issue; keep it down here
        from mailpipe.workers.deferral import defer
        defer(rt_, entry, "remote", "relay not available", retry_after=300)
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "remote", unavailable)
    qid = spool_message(rt, "x@foreign.test")
    rt.pipeline.run(qid, "smtp_in")
    entry = rt.spool.load(qid)
    assert entry.state == State.DEFERRED and entry.stage == "remote"
    assert entry.next_attempt == rt.clock.now() + 300
    scheduler = Scheduler(rt.spool, rt.publish, rt.config, rt.clock)
    assert scheduler.tick().due == 0 and rt.publish == []
    rt.clock.advance(301)
    assert scheduler.tick().due == 1
    assert rt.publish == [("remote", qid)] and rt.spool.load(qid).state == State.ACTIVE


def test_sweeper_republishes_a_stalled_active_message(rt):
    qid = spool_message(rt, "alice@example.test")
    entry = rt.spool.load(qid)
    entry.updated_at = rt.clock.now() - rt.config.pipeline.sweep_after - 1
    (rt.spool.queue / f"{qid}.json").write_bytes(entry.model_dump_json().encode())
    result = Scheduler(rt.spool, rt.publish, rt.config, rt.clock).tick()
    assert result.swept == 1 and rt.publish == [("smtp_in", qid, "redelivered")]
