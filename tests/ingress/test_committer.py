"""Group commit at the ingress (``ingress.committer``): a real spool in a temporary directory
and a recording ``publish_many`` (the batching logic); the real brokers carry batches in
``tests/spine/test_group_commit.py`` and in every end-to-end test."""

from __future__ import annotations

import asyncio
import errno
import smtplib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import mailpipe.spool.fs as spool_fs
from mailpipe.core.errors import BrokerUnavailable, SpoolFull
from mailpipe.core.ids import new_queue_id
from mailpipe.ingress.committer import Committer
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry, Recipient


class Recorder:
    """publish_many that records batches; the first call can be held until released."""

    def __init__(self, hold_first: bool = False, fail: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.hold_first, self.fail = hold_first, fail

    def __call__(self, stage: str, ids: list[str]) -> None:
        assert stage == "smtp_in"
        self.batches.append(list(ids))
        if len(self.batches) == 1 and self.hold_first:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail


def message(body: bytes = b"Subject: t\r\n\r\nhi\r\n") -> tuple[Entry, list[bytes]]:
    entry = Entry(id=new_queue_id(), sender="a@b.test", recipients=[Recipient(address="c@d.test")],
                  size=len(body), received_at=time.time())
    return entry, [body]


@pytest.fixture
def spool_dir(tmp_path) -> FilesystemSpool:
    return FilesystemSpool(tmp_path / "spool")


def run(committer: Committer, coro_fn):
    async def main():
        try:
            return await coro_fn()
        finally:
            committer.executor.shutdown(wait=False)
    return asyncio.run(main())


def make(spool: FilesystemSpool, rec: Recorder, *, threads: int = 1, max_batch: int = 16,
         timeout: float = 60.0) -> Committer:
    return Committer(spool, rec, ThreadPoolExecutor(threads), threads=threads, max_batch=max_batch,
                     timeout=timeout)


async def commit_all(committer: Committer, messages) -> list[object]:
    return await asyncio.gather(*(committer.commit(e, c) for e, c in messages), return_exceptions=True)


def test_a_message_alone_is_spooled_and_published_at_once(spool_dir):
    rec = Recorder()
    committer = make(spool_dir, rec)
    entry, chunks = message()
    run(committer, lambda: committer.commit(entry, chunks))
    assert rec.batches == [[entry.id]]
    assert spool_dir.ids() == [entry.id]
    assert spool_dir.message(entry.id) == chunks[0]


def test_messages_of_one_loop_turn_share_a_batch_of_at_most_max_batch(spool_dir):
    rec = Recorder()
    committer = make(spool_dir, rec, max_batch=2)
    messages = [message() for _ in range(5)]
    assert run(committer, lambda: commit_all(committer, messages)) == [None] * 5
    assert [len(b) for b in rec.batches] == [2, 2, 1]
    assert sorted(i for b in rec.batches for i in b) == sorted(e.id for e, _ in messages)
    assert spool_dir.ids() == sorted(e.id for e, _ in messages)


def test_messages_arriving_while_every_thread_is_busy_go_together_next(spool_dir):
    rec = Recorder(hold_first=True)
    committer = make(spool_dir, rec, threads=1)
    first, later = message(), [message() for _ in range(6)]

    async def scenario():
        head = asyncio.ensure_future(committer.commit(*first))
        assert await asyncio.to_thread(rec.entered.wait, 10)
        rest = asyncio.ensure_future(commit_all(committer, later))
        for _ in range(5):                 # let every later session queue up behind the held batch
            await asyncio.sleep(0)
        assert len(committer._waiting) == len(later)
        rec.release.set()
        return await head, await rest
    assert run(committer, scenario) == (None, [None] * 6)
    assert rec.batches == [[first[0].id], [e.id for e, _ in later]]


def test_a_second_thread_takes_a_batch_only_once_half_a_batch_waits(spool_dir):
    """With a batch in flight, a few arrivals wait for it (one larger batch later); once
    ``max_batch // 2`` wait, another thread takes them at once (a slow fsync must not cap the rate)."""
    rec = Recorder(hold_first=True)
    committer = make(spool_dir, rec, threads=2, max_batch=8)
    first, few, more = message(), [message() for _ in range(3)], [message() for _ in range(4)]

    async def scenario():
        head = asyncio.ensure_future(committer.commit(*first))
        assert await asyncio.to_thread(rec.entered.wait, 10)
        waiting = asyncio.ensure_future(commit_all(committer, few))
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(committer._waiting) == 3 and len(rec.batches) == 1   # 3 < 8 // 2: they wait
        rest = asyncio.ensure_future(commit_all(committer, more))
        deadline = time.monotonic() + 10
        while len(rec.batches) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert rec.batches[1] == [e.id for e, _ in few + more]         # 7 >= 4: a second thread
        rec.release.set()
        return await head, await waiting, await rest
    assert run(committer, scenario) == (None, [None] * 3, [None] * 4)
    assert len(rec.batches) == 2


def test_a_failed_publish_fails_its_whole_batch_and_leaves_nothing_spooled(spool_dir):
    rec = Recorder(fail=BrokerUnavailable("refused"))
    committer = make(spool_dir, rec)
    results = run(committer, lambda: commit_all(committer, [message() for _ in range(3)]))
    assert [type(r) for r in results] == [BrokerUnavailable] * 3
    assert len({id(r) for r in results}) == 3          # one exception object per session
    assert spool_dir.ids() == []


def test_an_unexpected_publish_error_is_a_local_error_and_leaves_nothing_spooled(spool_dir):
    rec = Recorder(fail=KeyError("detail"))
    committer = make(spool_dir, rec)
    results = run(committer, lambda: commit_all(committer, [message()]))
    assert [type(r) for r in results] == [RuntimeError]
    assert spool_dir.ids() == []


def test_a_message_the_disk_refuses_fails_alone(spool_dir, monkeypatch):
    messages = [message() for _ in range(3)]
    refused = messages[1][0].id
    real = spool_fs._write_new

    def write_new(path, chunks):
        if Path(path).name == refused:
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, chunks)
    monkeypatch.setattr(spool_fs, "_write_new", write_new)
    rec = Recorder()
    committer = make(spool_dir, rec)
    results = run(committer, lambda: commit_all(committer, messages))
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], SpoolFull) and "No space left" in str(results[1])
    assert rec.batches == [[messages[0][0].id, messages[2][0].id]]
    assert spool_dir.ids() == sorted([messages[0][0].id, messages[2][0].id])


def test_a_publish_that_never_confirms_times_out_and_its_message_is_removed(spool_dir):
    rec = Recorder(hold_first=True)
    committer = make(spool_dir, rec, threads=1, timeout=0.2)
    stuck, behind = message(), message()

    async def scenario():
        results = await commit_all(committer, [stuck])
        assert spool_dir.ids() == []                   # removed although its batch is still in flight
        results += await commit_all(committer, [behind])   # never taken: the only thread is stuck
        rec.release.set()
        for _ in range(200):                           # the stuck batch returns; its file goes again
            if committer._in_flight == 0:
                break
            await asyncio.sleep(0.01)
        return results
    results = run(committer, scenario)
    assert [type(r) for r in results] == [BrokerUnavailable, BrokerUnavailable]
    assert "not confirmed" in str(results[0])
    assert rec.batches == [[stuck[0].id]]
    assert committer._waiting == [] and committer._abandoned == set()
    assert spool_dir.ids() == []


def test_concurrent_sessions_through_the_real_listener_are_each_published_once(server):
    """Twenty smtplib sessions at once: every accepted message is spooled and in exactly one batch."""
    batches: list[list[str]] = []
    server.ctx.publish_many = lambda stage, ids: batches.append(list(ids))
    refused: list[dict] = []

    def session(i: int) -> None:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as client:
            for j in range(5):      # sendmail raises unless the message is accepted
                refused.append(client.sendmail(f"s{i}@sender.test", ["alice@example.test"],
                                               f"Subject: {i}.{j}\r\n\r\nbody\r\n"))
    threads = [threading.Thread(target=session, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert refused == [{}] * 100
    published = [qid for batch in batches for qid in batch]
    assert len(published) == 100 and len(set(published)) == 100
    assert sorted(published) == server.spool.ids()
