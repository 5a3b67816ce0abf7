"""The spool conformance suite: the guarantees of docs/design.md ("The spool"), for every backend.

Each test runs once per backend of ``backends.BACKENDS``; nothing here knows how a
backend stores anything (only ``backend.corrupt`` damages an entry its own way).
Processes are real (spawned children, killed with SIGKILL); time is injected
(``due(now)``, a ``FakeClock`` for the scheduler); every wait has a deadline.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.config import Config
from mailpipe.core.ids import new_queue_id
from mailpipe.spool.interface import CORRUPT, CorruptEntry, Query
from mailpipe.spool.model import Entry, Recipient, State
from mailpipe.workers.scheduler import Scheduler
from tests.spool import children

T0 = 1_700_000_000.0
ctx = multiprocessing.get_context("spawn")


def entry(sender="a@remote.test", rcpts=("b@example.test",), at=T0, state=State.ACTIVE, **fields) -> Entry:
    return Entry(id=new_queue_id(at), sender=sender, size=5, received_at=at, state=state,
                 recipients=[Recipient(address=r, route="remote" if "far" in r else "local") for r in rcpts], **fields)


def deferred(spool, next_attempt: float, **kw) -> Entry:
    e = entry(**kw)
    spool.create(e, [b"body"])
    e.state, e.stage, e.next_attempt = State.DEFERRED, "remote", next_attempt
    spool.save(e)
    return e


def child(target, *args):
    proc = ctx.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


# -- create ---------------------------------------------------------------------------------------
def test_create_is_durable_before_it_returns_even_if_the_creator_is_killed(backend):
    e = entry()
    here, there = ctx.Pipe()
    proc = child(children.create_then_die, backend, e, b"Subject: x\r\n\r\nbody\r\n", there)
    assert here.poll(30) and here.recv() == "created"
    proc.join(30)
    assert proc.exitcode == -9
    spool = backend.open()
    assert spool.load(e.id).sender == e.sender
    assert spool.message(e.id) == b"Subject: x\r\n\r\nbody\r\n"
    assert [r.id for r in spool.listing()] == [e.id]


def test_unknown_ids_raise_file_not_found(spool):
    with pytest.raises(FileNotFoundError):
        spool.load(new_queue_id())
    with spool.claim(new_queue_id()) as claimed:
        assert claimed is None


# -- claim ----------------------------------------------------------------------------------------
def test_claim_is_exclusive_and_released_when_the_holder_is_killed(backend, spool):
    e = entry()
    spool.create(e, [b"body"])
    here, there = ctx.Pipe()
    proc = child(children.claim_and_hold, backend, e.id, there)
    assert here.poll(30) and here.recv() is True
    with spool.claim(e.id) as claimed:
        assert claimed is None                            # the child holds it
    with spool.lock(e.id) as owned:
        assert owned is False
    proc.kill()
    proc.join(30)
    with spool.claim(e.id) as claimed:
        assert claimed is not None and claimed.entry.id == e.id and claimed.message == b"body"


# -- save -----------------------------------------------------------------------------------------
def test_save_is_atomic_a_reader_sees_one_whole_version(backend, spool):
    e = entry()
    spool.create(e, [b"body"])
    here, there = ctx.Pipe()
    proc = child(children.save_versions, backend, e.id, 400, there)
    assert here.poll(30) and here.recv() == "ready"
    seen = set()
    for _ in range(20_000):                               # bounded; ends when the writer is done
        loaded = spool.load(e.id)
        assert len(loaded.last_error) == 1000 * loaded.attempts or loaded.attempts == 0
        seen.add(loaded.attempts)
        if here.poll(0):
            break
    proc.join(30)
    assert proc.exitcode == 0 and len(seen) > 1


# -- finish ---------------------------------------------------------------------------------------
def test_finish_moves_the_message_out_of_the_queue_exactly_once(backend, spool):
    e = entry()
    spool.create(e, [b"body"])
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [child(children.finish_once, backend, e.id, barrier, results) for _ in range(2)]
    outcomes = [results.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert outcomes.count(True) == 1
    finished = spool.load(e.id)
    assert finished.state == State.DONE and [t.event for t in finished.trace].count("done") == 1
    assert e.id not in spool.ids() and list(spool.listing()) == []
    with spool.claim(e.id) as claimed:
        assert claimed is None                            # a redelivered task finds nothing to do
    with pytest.raises(FileNotFoundError):
        spool.message(e.id)


# -- due ------------------------------------------------------------------------------------------
def test_due_entries_come_by_next_attempt_and_only_when_due(spool):
    late = deferred(spool, T0 + 30, at=T0 + 1)
    early = deferred(spool, T0 + 10, at=T0 + 2)
    held = entry(state=State.HOLD)
    spool.create(held, [b"x"])
    active = entry()
    spool.create(active, [b"x"])
    assert spool.due(T0) == []
    assert spool.due(T0 + 10) == [early.id]
    assert spool.due(T0 + 60) == [early.id, late.id]
    assert spool.due(T0 + 60, limit=1) == [early.id]
    early.state, early.next_attempt = State.ACTIVE, None          # retried: no longer due
    spool.save(early)
    assert spool.due(T0 + 60) == [late.id]
    spool.delete(late.id)
    assert spool.due(T0 + 60) == []


def test_the_scheduler_republishes_what_is_due_by_an_injected_clock(spool):
    clock, published = FakeClock(T0), []
    first = deferred(spool, T0 + 100)
    deferred(spool, T0 + 500)
    scheduler = Scheduler(spool, lambda stage, qid, redelivered=False: published.append((stage, qid)),
                          Config(), clock)
    assert scheduler.tick().due == 0 and published == []
    clock.advance(100)
    assert scheduler.tick().due == 1 and published == [("remote", first.id)]
    assert spool.load(first.id).state == State.ACTIVE
    assert scheduler.tick().due == 0


# -- listing --------------------------------------------------------------------------------------
def test_listing_streams_rows_and_filters(spool):
    a = deferred(spool, T0 + 10, sender="x@one.test", rcpts=("u@far.test", "v@near.test"), at=T0 - 7200)
    b = entry(sender="y@two.test", rcpts=("w@far.test",), at=T0 - 60, state=State.HOLD)
    spool.create(b, [b"x"])
    c = entry(sender="", rcpts=("Z@Other.test",), at=T0)
    spool.create(c, [b"x"])
    rows = spool.listing()
    assert isinstance(rows, Iterator)                      # streamed, not a list
    assert [r.id for r in rows] == sorted([a.id, b.id, c.id])

    def ids(**query) -> set[str]:
        return {r.id for r in spool.listing(Query(**query))}
    assert ids(states=frozenset(["deferred"])) == {a.id}
    assert ids(states=frozenset(["hold", "active"])) == {b.id, c.id}
    assert ids(sender="X@ONE.test") == {a.id} and ids(sender="") == {c.id}
    assert ids(recipient="z@other.test") == {c.id}
    assert ids(domain="far.test") == {a.id, b.id}
    assert ids(received_before=T0 - 3600) == {a.id}
    assert ids(domain="far.test", states=frozenset(["hold"])) == {b.id}
    row = next(spool.listing(Query(states=frozenset(["deferred"]))))
    assert (row.sender, row.stage, row.next_attempt, row.remote_domains) == ("x@one.test", "remote", T0 + 10,
                                                                              ["far.test"])
    assert row.bytes > 0


def test_listing_follows_changes_and_finished_messages_leave_it(spool):
    e = deferred(spool, T0 + 10)
    assert [r.state for r in spool.listing()] == ["deferred"]
    e.state = State.HOLD
    spool.save(e)
    assert [r.state for r in spool.listing()] == ["hold"]
    e.state = State.DONE
    spool.save(e)
    assert list(spool.listing()) == [] and spool.due(T0 + 60) == []


# -- corrupt entries ------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["garbage", "field"])
@pytest.mark.parametrize("saved", [False, True], ids=["created", "saved"])
def test_a_corrupt_entry_is_listed_with_its_reason_and_can_be_moved_aside(backend, spool, how, saved):
    good, bad = entry(), entry()
    for e in (good, bad):
        spool.create(e, [b"body"])
    if saved:
        bad.stage = "route"
        spool.save(bad)
    backend.corrupt(bad.id, how)
    rows = {r.id: r for r in spool.listing()}
    assert rows[good.id].state == "active"
    assert rows[bad.id].state == CORRUPT and rows[bad.id].last_error
    assert [r.id for r in spool.listing(Query(states=frozenset([CORRUPT])))] == [bad.id]
    with pytest.raises(CorruptEntry) as caught:
        spool.load(bad.id)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)
    assert list(spool.entries()) != [] and all(e.id != bad.id for e in spool.entries())
    where = spool.move_aside(bad.id)
    assert bad.id in where
    assert [r.id for r in spool.listing()] == [good.id]
    with pytest.raises(FileNotFoundError):
        spool.move_aside(bad.id)
