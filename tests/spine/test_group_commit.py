"""Group commit: queue IDs accepted together share one broker message; a worker runs them all.

The ``GroupPublisher`` tests use a recording ``publish_many`` (pure logic of the
batching); the batch tests further down use the real brokers and a real
``mailpipe worker`` process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from core.errors import BrokerUnavailable
from core.ids import new_queue_id
from ops.config import load
from spool.fs import FilesystemSpool
from spool.model import Entry, Recipient
from tests.support import ServeProcess, add_accounts, wait_for
from workers.app import create_app, publish_many
from workers.group_commit import GroupPublisher


class Recorder:
    """publish_many that records batches; the first call can be held until released."""

    def __init__(self, hold_first: bool = False, fail: set[str] = frozenset()) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.hold_first, self.fail = hold_first, fail
        self.lock = threading.Lock()

    def __call__(self, stage: str, ids: list[str]) -> None:
        with self.lock:
            first = not self.batches
            self.batches.append((stage, list(ids)))
        if first and self.hold_first:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail & set(ids):
            raise BrokerUnavailable("refused")


def call_all(publisher, items: list[tuple[str, str]]) -> dict[str, str]:
    """Publish every (stage, id) from its own thread; return id -> 'ok' or the error text."""
    outcome: dict[str, str] = {}

    def one(stage: str, qid: str) -> None:
        try:
            publisher(stage, qid)
            outcome[qid] = "ok"
        except BrokerUnavailable as exc:
            outcome[qid] = str(exc)
    threads = [threading.Thread(target=one, args=item) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return outcome


def test_one_caller_is_published_at_once_alone():
    rec = Recorder()
    publisher = GroupPublisher(rec, max_batch=16, flushers=1)
    publisher("smtp_in", "A")
    assert rec.batches == [("smtp_in", ["A"])]
    publisher.close()


def behind_a_publish_in_flight(rec: Recorder, publisher: GroupPublisher,
                                items: list[tuple[str, str]]) -> dict[str, str]:
    """Hold one publish in flight, let ``items`` queue up behind it, release it; each item's outcome."""
    first = threading.Thread(target=publisher, args=("smtp_in", "first"))
    first.start()
    assert rec.entered.wait(10)
    results: dict[str, str] = {}
    caller = threading.Thread(target=lambda: results.update(call_all(publisher, items)))
    caller.start()
    wait_for(lambda: len(publisher._pending) == len(items), 10, what=f"{len(items)} callers waiting")
    rec.release.set()
    caller.join(10)
    first.join(10)
    return results


def test_callers_waiting_on_a_publish_in_flight_share_the_next_one():
    rec = Recorder(hold_first=True)
    publisher = GroupPublisher(rec, max_batch=4, flushers=1)
    waiting = [("smtp_in", f"id{i}") for i in range(10)]
    results = behind_a_publish_in_flight(rec, publisher, waiting)
    assert results == {qid: "ok" for _, qid in waiting}
    sizes = [len(ids) for _, ids in rec.batches]
    assert sizes == [1, 4, 4, 2]                     # max_batch respected, nobody published twice
    assert sorted(i for _, ids in rec.batches[1:] for i in ids) == sorted(qid for _, qid in waiting)
    publisher.close()


def test_a_failed_publish_fails_exactly_its_batch():
    rec = Recorder(hold_first=True, fail={"bad"})
    publisher = GroupPublisher(rec, max_batch=2, flushers=1)
    results = behind_a_publish_in_flight(rec, publisher, [("smtp_in", "bad"), ("smtp_in", "x"), ("smtp_in", "y")])
    failed_batch = next(ids for _, ids in rec.batches if "bad" in ids)
    assert {q for q, r in results.items() if r != "ok"} == set(failed_batch)
    assert all(results[q] == "refused" for q in failed_batch)
    publisher.close()


def test_stages_never_share_a_message():
    rec = Recorder(hold_first=True)
    publisher = GroupPublisher(rec, max_batch=16, flushers=1)
    behind_a_publish_in_flight(rec, publisher, [("smtp_in", "a"), ("local", "b"), ("smtp_in", "c"), ("local", "d")])
    assert sorted((stage, sorted(ids)) for stage, ids in rec.batches[1:]) == [
        ("local", ["b", "d"]), ("smtp_in", ["a", "c"])]
    publisher.close()


def test_a_publish_that_never_confirms_times_out_as_broker_unavailable():
    rec = Recorder(hold_first=True)
    publisher = GroupPublisher(rec, max_batch=16, flushers=1, timeout=0.2)
    with pytest.raises(BrokerUnavailable, match="not confirmed"):
        publisher("smtp_in", "stuck")
    with pytest.raises(BrokerUnavailable, match="not confirmed"):
        publisher("smtp_in", "behind")               # never taken: the only flusher is stuck
    assert "behind" not in [w.queue_id for w in publisher._pending]
    rec.release.set()
    publisher.close()


# -- batches through the real brokers and a real worker process ---------------------------------

USERS = ["alice", "bob", "carol"]


def spool_three(srv: ServeProcess) -> list[str]:
    spool = FilesystemSpool(srv.data_dir / "spool")
    ids = []
    for user in USERS:
        entry = Entry(id=new_queue_id(), sender="x@remote.test",
                      recipients=[Recipient(address=f"{user}@example.test")], size=0, received_at=time.time())
        body = f"Subject: batch for {user}\r\nMessage-ID: <{entry.id}@remote.test>\r\n\r\nhi\r\n".encode()
        entry.size = len(body)
        spool.create(entry, [body])
        ids.append(entry.id)
    return ids


def start_worker(srv: ServeProcess) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    return subprocess.Popen([sys.executable, "-m", "ops", "--config", str(srv.config), "--data-dir",
                             str(srv.data_dir), "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def delivered_once(srv: ServeProcess) -> bool:
    counts = [len(srv.delivered(f"{u}@example.test")) for u in USERS]
    assert max(counts) <= 1, counts
    return counts == [1, 1, 1]


@pytest.mark.slow
def test_a_batch_message_delivers_each_id_and_a_redelivered_batch_is_split(tmp_path, broker_url):
    srv = ServeProcess(tmp_path, broker_url=broker_url)
    add_accounts(srv.data_dir, "example.test", USERS)
    app = create_app(load(srv.config, data_dir=srv.data_dir))
    ids = spool_three(srv)
    publish_many(app, "smtp_in", ids)
    status = json.loads(srv.cli("queue", "status", "--json").stdout)
    assert {q["stage"]: q["depth"] for q in status["queues"]}["smtp_in"] == 1   # three IDs, one message
    worker = start_worker(srv)
    try:
        wait_for(lambda: delivered_once(srv), 60, what="three deliveries from one batch")
        for user in USERS:
            (path,) = srv.delivered(f"{user}@example.test")
            path.unlink()
        again = spool_three(srv)
        publish_many(app, "smtp_in", again, redelivered=True)    # as a worker killed mid-batch leaves it
        wait_for(lambda: delivered_once(srv), 60, what="three deliveries after the split")
        spool = FilesystemSpool(srv.data_dir / "spool")
        for qid in again:
            events = [e.event for e in spool.load(qid).trace]
            assert "redelivered" in events and events[-1] == "done"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
