"""The filesystem spool's own promises beyond the interface: its index stays a cache (lost or
behind, it is rebuilt), the scheduler reads only what is due, and the hot path never touches it."""

from __future__ import annotations

import os
import sqlite3

from mailpipe.core.clock import FakeClock
from mailpipe.core.config import Config
from mailpipe.core.ids import new_queue_id
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.interface import CORRUPT
from mailpipe.spool.model import Entry, Recipient, State
from mailpipe.workers.scheduler import Scheduler

T0 = 1_700_000_000.0


def deferred(spool: FilesystemSpool, next_attempt: float) -> Entry:
    e = Entry(id=new_queue_id(), sender="a@x.test", recipients=[Recipient(address="b@far.test")], size=1,
              received_at=T0)
    spool.create(e, [b"x"])
    e.state, e.stage, e.next_attempt = State.DEFERRED, "remote", next_attempt
    spool.save(e)
    return e


def test_a_tick_reads_no_entry_that_is_not_due(tmp_path, monkeypatch):
    spool = FilesystemSpool(tmp_path)
    for _ in range(50):
        deferred(spool, T0 + 3600)
    due = deferred(spool, T0 + 10)
    clock = FakeClock(T0 + 20)
    scheduler = Scheduler(spool, lambda *a, **k: None, Config(), clock)
    scheduler.tick()                                        # the first tick reconciles the index
    loads: list[str] = []
    real_load = spool.load
    monkeypatch.setattr(spool, "load", lambda qid: loads.append(qid) or real_load(qid))
    clock.advance(1)
    result = scheduler.tick()
    assert spool.load(due.id).state == State.ACTIVE
    assert result.reconciled is None and loads[:-1] == [due.id]   # 50 deferred not due: none read; the sweep
    #                                                          reads only the message in the pipeline


def test_a_lost_index_is_rebuilt_by_reconcile(tmp_path):
    spool = FilesystemSpool(tmp_path)
    e = deferred(spool, T0 + 10)
    os.unlink(tmp_path / "index.sqlite")
    fresh = FilesystemSpool(tmp_path)
    assert fresh.due(T0 + 60) == []                          # the index is a cache: empty now
    assert fresh.reconcile() == 1
    assert fresh.due(T0 + 60) == [e.id]


def test_a_torn_index_file_is_replaced(tmp_path):
    spool = FilesystemSpool(tmp_path)
    e = deferred(spool, T0 + 10)
    (tmp_path / "index.sqlite").write_bytes(b"\x00" * 4096)
    for extra in ("-wal", "-shm"):
        (tmp_path / f"index.sqlite{extra}").unlink(missing_ok=True)
    fresh = FilesystemSpool(tmp_path)
    assert fresh.reconcile() == 1 and fresh.due(T0 + 60) == [e.id]


def test_an_index_write_failure_never_fails_a_save(tmp_path, monkeypatch, caplog):
    spool = FilesystemSpool(tmp_path)

    def locked(rows):
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(spool.index, "put", locked)
    e = deferred(spool, T0 + 10)                             # saved; the row is missing
    assert spool.load(e.id).state == State.DEFERRED and "repaired by the next reconcile" in caplog.text
    monkeypatch.undo()
    assert spool.due(T0 + 60) == []
    spool.reconcile()
    assert spool.due(T0 + 60) == [e.id]


def test_the_hot_path_never_touches_the_index(tmp_path, monkeypatch):
    spool = FilesystemSpool(tmp_path)
    e = Entry(id=new_queue_id(), sender="a@x.test", recipients=[Recipient(address="b@x.test")], size=1,
              received_at=T0)
    spool.create(e, [b"x"])
    touched: list[str] = []
    monkeypatch.setattr(spool.index, "put", lambda rows: touched.append("put"))
    monkeypatch.setattr(spool.index, "remove", lambda ids: touched.append("remove"))
    with spool.claim(e.id) as claimed:
        assert claimed is not None
        claimed.entry.stage = "route"
        spool.save(claimed.entry, durable=False)
        claimed.entry.state = State.DONE
        spool.save(claimed.entry, durable=False)
    assert touched == []


def test_corrupt_entries_go_aside_into_the_spool_s_aside_folder(tmp_path):
    spool = FilesystemSpool(tmp_path)
    e = deferred(spool, T0 + 10)
    (tmp_path / "queue" / f"{e.id}.json").write_bytes(b"\x00garbage")
    [row] = list(spool.listing())
    assert row.state == CORRUPT and row.last_error == "not valid JSON"
    assert spool.move_aside(e.id) == str(tmp_path / "aside" / e.id)
    assert sorted(os.listdir(tmp_path / "aside")) == [e.id, f"{e.id}.json"]
    assert os.listdir(tmp_path / "queue") == [] and spool.due(T0 + 60) == []


def test_a_queue_file_still_being_created_is_not_called_corrupt(tmp_path):
    spool = FilesystemSpool(tmp_path)
    qid = new_queue_id()
    (tmp_path / "queue" / qid).write_bytes(b'{"id": "')      # a create in progress: fresh, torn
    assert list(spool.listing()) == []
    old = os.stat(tmp_path / "queue" / qid).st_mtime - 60
    os.utime(tmp_path / "queue" / qid, (old, old))
    assert [r.state for r in spool.listing()] == [CORRUPT]


def test_purge_orphans_moves_a_torn_entry_aside_instead_of_deleting_it(tmp_path):
    spool = FilesystemSpool(tmp_path)
    qid = new_queue_id()
    (tmp_path / "queue" / qid).write_bytes(b'{"id": "' + qid.encode() + b"\nSubject: kept\r\n\r\nbody")
    assert spool.purge_orphans(older_than=2e9) == 1
    assert (tmp_path / "aside" / qid).read_bytes().endswith(b"body")


def test_an_unreadable_index_still_lists_every_entry(tmp_path, monkeypatch):
    spool = FilesystemSpool(tmp_path)
    e = deferred(spool, T0 + 10)

    def broken():
        raise sqlite3.OperationalError("unable to open database file")
        yield
    monkeypatch.setattr(spool.index, "rows", broken)
    assert [(r.id, r.state) for r in spool.listing()] == [(e.id, "deferred")]
