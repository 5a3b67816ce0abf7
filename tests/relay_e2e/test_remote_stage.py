"""The remote stage inside a real pipeline Runtime: real spool, real DNS server, real receivers, fake clock.

The broker is the only seam: publishes are recorded in a list (the serve tests
cover the broker). Time never passes by sleeping: the FakeClock is advanced and
the real ``Scheduler.tick`` republishes what is due.
"""

from __future__ import annotations

import email
import uuid
from pathlib import Path

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.ids import new_queue_id
from mailpipe.core.config import load
from mailpipe.spool.model import Entry, Recipient, State
from tests.relay_e2e.conftest import REJECT_REPLY, REJECTED, relay_toml
from tests.support import mailpipe
from mailpipe.workers.bounce import OPERATOR_REPLY
from mailpipe.workers.runtime import Runtime
from mailpipe.workers.scheduler import Scheduler

SENDER = "alice@example.test"


def body(subject: str = "hi") -> tuple[str, bytes]:
    mid = f"<{uuid.uuid4().hex}@example.test>"
    return mid, (f"From: {SENDER}\r\nTo: someone@mxtest.test\r\nSubject: {subject}\r\n"
                 f"Message-ID: {mid}\r\n\r\nhello\r\n").encode()


class Harness:
    def __init__(self, tmp: Path, dns_server, relay_port: int, **relay) -> None:
        self.config_path = tmp / "mailpipe.toml"
        self.config_path.write_text(f'hostname = "mx.example.test"\ndata_dir = "{tmp / "data"}"\n'
                                    + relay_toml(dns_server, relay_port, **relay))
        self.config = load(self.config_path)
        self.clock = FakeClock()
        self.published: list[tuple[str, str]] = []
        self.rt = Runtime(self.config, publish=lambda s, q, **_: self.published.append((s, q)),
                          served=frozenset({"remote"}), clock=self.clock)
        self.scheduler = Scheduler(self.rt.spool, self.rt.publish, self.config, self.clock)

    def spool(self, rcpts: list[str], sender: str = SENDER, message: bytes | None = None, **fields) -> str:
        message = message if message is not None else body()[1]
        entry = Entry(id=new_queue_id(), sender=sender, size=len(message), received_at=self.clock.now(),
                      recipients=[Recipient(address=a, route="remote") for a in rcpts], stage="remote",
                      **fields)
        self.rt.spool.create(entry, [message])
        return entry.id

    def run(self, qid: str) -> Entry:
        self.rt.pipeline.run(qid, "remote")
        return self.rt.spool.load(qid)

    def tick_and_run(self, qid: str, advance: float) -> Entry:
        """Advance the clock, let the scheduler republish due entries, run the republished task."""
        self.clock.advance(advance)
        self.published.clear()
        self.scheduler.tick()
        for stage, queue_id in list(self.published):
            if stage == "remote":
                self.rt.pipeline.run(queue_id, stage)
        return self.rt.spool.load(qid)

    def bounces(self) -> list[Entry]:
        return [e for e in self.rt.spool.entries() if e.is_bounce]


@pytest.fixture
def h(tmp_path, dns_server, relay_port, sink, receiver):
    receiver.data_replies.clear()
    harness = Harness(tmp_path, dns_server, relay_port)
    yield harness
    harness.rt.relay.close()


def status_of(entry: Entry) -> dict[str, str]:
    return {r.address: r.status for r in entry.recipients}


def test_sent_recipient_is_delivered_with_the_remote_reply(h, sink):
    mid, msg = body()
    qid = h.spool(["someone@mxtest.test"], message=msg)
    entry = h.run(qid)
    assert entry.state == State.DONE
    assert status_of(entry) == {"someone@mxtest.test": "delivered"}
    assert entry.recipients[0].detail.startswith("250 ")
    assert len(sink.containing(mid)) == 1
    assert h.bounces() == [] and h.published == []


def test_451_twice_then_250_is_delivered_on_the_third_attempt(h, receiver):
    receiver.data_replies[:] = ["451 4.3.0 try again later", "451 4.3.0 try again later"]
    mid, msg = body()
    before = len(receiver.messages)
    qid = h.spool(["x@flaky.test"], message=msg)
    first = h.run(qid)
    assert first.state == State.DEFERRED and first.stage == "remote"
    assert first.next_attempt == h.clock.now() + 300.0              # retry_first
    assert first.last_error.startswith("451 4.3.0")
    assert h.tick_and_run(qid, 299.0).state == State.DEFERRED      # not due yet: nothing ran
    assert h.published == []
    second = h.tick_and_run(qid, 1.0)
    assert second.state == State.DEFERRED and second.attempts == 2
    assert second.next_attempt == h.clock.now() + 600.0             # doubled
    third = h.tick_and_run(qid, 600.0)
    assert third.state == State.DONE and status_of(third) == {"x@flaky.test": "delivered"}
    assert receiver.data_attempts >= 3
    got = [m for m in receiver.messages[before:] if mid.encode() in m.content]
    assert len(got) == 1
    assert h.bounces() == []


def test_550_for_one_of_two_recipients_bounces_only_that_one(h, receiver):
    mid, msg = body()
    qid = h.spool(["good@reject.test", REJECTED], message=msg)
    entry = h.run(qid)
    assert entry.state == State.DONE
    assert status_of(entry) == {"good@reject.test": "delivered", REJECTED: "failed"}
    assert entry.recipients[1].detail == REJECT_REPLY
    [dsn] = h.bounces()
    assert dsn.sender == "" and dsn.is_bounce and [r.address for r in dsn.recipients] == [SENDER]
    assert ("smtp_in", dsn.id) in h.published
    report = email.message_from_bytes(h.rt.spool.message(dsn.id))
    assert report.get_content_type() == "multipart/report"
    status = report.get_payload()[1].as_string()
    assert f"Final-Recipient: rfc822; {REJECTED}" in status
    assert "good@reject.test" not in status
    assert "Status: 5.1.1" in status
    assert mid in report.get_payload()[2].as_string()                  # original headers
    assert any(e.event == "bounced" and dsn.id in e.detail for e in entry.trace)


@pytest.mark.parametrize("sender, fields", [
    ("", {}),                                                           # null sender
    ("MAILER-DAEMON@elsewhere.test", {}),
    (SENDER, {"is_bounce": True}),                                      # never bounce a bounce
])
def test_no_dsn_for_null_sender_or_bounces(h, sender, fields):
    qid = h.spool([REJECTED], sender=sender, **fields)
    entry = h.run(qid)
    assert entry.state == State.DONE and status_of(entry) == {REJECTED: "failed"}
    assert h.bounces() == [] and h.published == []


def test_no_dsn_for_mail_judged_spam(h):
    _, msg = body()
    qid = h.spool([REJECTED], message=msg)
    entry = h.rt.spool.load(qid)
    entry.record(h.clock.now(), "spam", "tag", "score=7.0")
    h.rt.spool.save(entry)
    assert h.run(qid).state == State.DONE
    assert h.bounces() == []


def test_lifetime_expiry_fails_the_recipient_and_bounces(tmp_path, dns_server, relay_port):
    h = Harness(tmp_path, dns_server, relay_port, max_lifetime=1000.0)
    qid = h.spool(["x@dead.test"])
    entry = h.run(qid)
    assert entry.state == State.DEFERRED and "Connection refused" in entry.last_error
    for _ in range(10):                                                # bounded: 300, 600, then expiry
        entry = h.tick_and_run(qid, max(0.0, entry.next_attempt - h.clock.now()))
        if entry.state != State.DEFERRED:
            break
    assert entry.state == State.DONE
    assert h.clock.now() == entry.received_at + 1000.0                # the last try happens at expiry
    assert entry.recipients[0].status == "failed"
    assert entry.recipients[0].detail.startswith("5.4.7 message expired")
    [dsn] = h.bounces()
    status = email.message_from_bytes(h.rt.spool.message(dsn.id)).get_payload()[1].as_string()
    assert "Status: 5.4.7" in status and "Action: failed" in status


def test_delay_warning_is_sent_once(tmp_path, dns_server, relay_port):
    h = Harness(tmp_path, dns_server, relay_port, delay_warning=250.0)
    qid = h.spool(["x@dead.test"])
    h.run(qid)
    assert h.bounces() == []                                           # too early
    h.tick_and_run(qid, 300.0)
    [warning] = h.bounces()
    text = email.message_from_bytes(h.rt.spool.message(warning.id)).get_payload()[1].as_string()
    assert "Action: delayed" in text and "Will-Retry-Until:" in text
    entry = h.tick_and_run(qid, 600.0)
    assert entry.state == State.DEFERRED
    assert len(h.bounces()) == 1


def test_redelivered_task_never_resends_to_delivered_recipients(h, sink):
    """A partly delivered message retried later sends only to the open recipient; a duplicate task for a
    finished message does nothing. (A duplicate is possible only if a worker dies after the remote server
    answered 250 to the final dot and before the spool save that follows the stage: SMTP gives no way to
    ask the remote whether it already has the message.)"""
    mid, msg = body()
    qid = h.spool(["someone@mxtest.test", "x@dead.test"], message=msg)
    entry = h.run(qid)
    assert status_of(entry) == {"someone@mxtest.test": "delivered", "x@dead.test": "deferred"}
    entry.state = State.ACTIVE                            # due again; the task is a redelivery after a crash
    h.rt.spool.save(entry)
    h.rt.pipeline.run(qid, "remote", redelivered=True)
    entry = h.rt.spool.load(qid)
    assert any(e.event == "redelivered" for e in entry.trace)
    assert status_of(entry)["someone@mxtest.test"] == "delivered"
    h.rt.pipeline.run(qid, "remote")                      # duplicate task: not active -> dropped
    assert len(sink.containing(mid)) == 1


def test_queue_retry_flushes_past_a_down_mark(h, sink):
    """Down marks live in worker memory; ``queue retry`` (another process) makes the attempt ignore them."""
    mid, msg = body()
    sink.stop()
    try:
        qid = h.spool(["someone@mxtest.test"], message=msg)
        entry = h.run(qid)
        assert entry.state == State.DEFERRED and "Connection refused" in entry.last_error
    finally:
        sink.start()
    entry.state = State.ACTIVE                            # what the scheduler does when it is due
    h.rt.spool.save(entry)
    entry = h.run(qid)
    assert entry.state == State.DEFERRED and "marked down" in entry.last_error
    assert sink.containing(mid) == []
    out = mailpipe("queue", "retry", qid, config=h.config_path).stdout.decode()
    assert "retry requested" in out
    h.rt.pipeline.run(qid, "remote", redelivered=True)    # a redelivery event must not hide the flush
    entry = h.rt.spool.load(qid)
    assert entry.state == State.DONE and status_of(entry) == {"someone@mxtest.test": "delivered"}
    assert len(sink.containing(mid)) == 1


def test_queue_bounce_gives_up_now_with_a_dsn(h):
    qid = h.spool(["x@dead.test"])
    assert h.run(qid).state == State.DEFERRED
    out = mailpipe("queue", "bounce", qid, config=h.config_path).stdout.decode()
    entry = h.rt.spool.load(qid)
    assert entry.state == State.DONE and entry.recipients[0].status == "failed"
    assert entry.recipients[0].detail.startswith(OPERATOR_REPLY)
    [dsn] = h.bounces()
    assert f"DSN {dsn.id}" in out
    assert dsn.recipients[0].address == SENDER and dsn.sender == ""


def test_rate_limited_message_waits_for_the_limit_not_the_backoff(tmp_path, dns_server, relay_port, sink):
    h = Harness(tmp_path, dns_server, relay_port, rate_per_destination=1)
    first, second = h.spool(["a@mxtest.test"]), h.spool(["b@mxtest.test"])
    assert h.run(first).state == State.DONE
    held = h.run(second)
    assert held.state == State.DEFERRED and held.last_error.startswith("4.7.0 rate limit")
    assert held.recipients[0].attempts == 0                              # no remote was tried
    assert 1.0 <= held.next_attempt - h.clock.now() <= 60.0              # not the 300 s backoff
    assert h.tick_and_run(second, held.next_attempt - h.clock.now()).state == State.DONE
