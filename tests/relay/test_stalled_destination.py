"""Issue 17.11: a stalled destination with all its connection slots taken never holds
a worker thread that other mail needs.

A real SMTP server on loopback that accepts the envelope and then stalls before
answering the final "." holds both slots of a destination capped at
``max_per_destination = 2``. The pipeline runs on a pool of three worker threads,
as a Celery worker does. A third message for the stalled destination must not
wait for a slot in its thread: it is held (``4.4.5``) and re-queued through the
spool with a short next-attempt time; a local message submitted after it is
delivered while both sessions are still stalled. Once the server answers,
everything is delivered exactly once.
"""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.config import Config
from mailpipe.core.ids import new_queue_id
from mailpipe.spool.model import Entry, Recipient, State
from mailpipe.workers.app import QUEUE_STAGES
from mailpipe.workers.runtime import Runtime
from mailpipe.workers.scheduler import Scheduler
from tests.support import fast_directory, wait_for

WORKER_THREADS = 3
BODY = b"Subject: t\r\n\r\nhello\r\n"


class StallingServer:
    """SMTP on 127.0.0.1: answers the envelope, then holds the final "." until released."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.release, self._stop = threading.Event(), threading.Event()
        self.stalled, self.accepted = 0, 0
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            worker = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self.threads.append(worker)
            worker.start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 stall.test ESMTP\r\n")
            in_data = False
            for _ in range(10_000):
                line = lines.readline()
                if not line:
                    return
                reply = self._answer(line.rstrip(b"\r\n"), in_data)
                in_data = reply == b"354 go ahead\r\n" or (in_data and reply is None)
                if reply:
                    conn.sendall(reply)
                if reply == b"221 bye\r\n":
                    return

    def _answer(self, line: bytes, in_data: bool) -> bytes | None:
        if in_data and line != b".":
            return None
        if line == b".":
            with self._lock:
                self.stalled += 1
            self.release.wait(30)                      # the stall: bounded, released by the test
            with self._lock:
                self.stalled -= 1
                self.accepted += 1
            return b"250 2.0.0 queued\r\n"
        verb = line[:4].upper()
        if verb == b"EHLO":
            return b"250-stall.test\r\n250 8BITMIME\r\n"
        if verb == b"DATA":
            return b"354 go ahead\r\n"
        if verb == b"QUIT":
            return b"221 bye\r\n"
        return b"250 2.0.0 ok\r\n"

    def close(self) -> None:
        self.release.set()
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
        for worker in self.threads:
            worker.join(timeout=5)


class Published(list):
    def __call__(self, stage: str, qid: str, redelivered: bool = False) -> None:
        self.append((stage, qid))


@pytest.fixture
def stall():
    server = StallingServer()
    yield server
    server.close()


@pytest.fixture
def rt(tmp_path, stall):
    config = Config(data_dir=tmp_path, hostname="mx.example.test", pipeline={"filters": []},
                    relay={"static_routes": {"stall.test": f"127.0.0.1:{stall.port}"},
                           "max_per_destination": 2, "connection_cache_time": 0})
    directory = fast_directory(tmp_path)
    directory.add_domain("example.test")
    directory.add_user("alice@example.test", "pw")
    runtime = Runtime(config, publish=Published(), served=frozenset(QUEUE_STAGES), clock=FakeClock(),
                      directory=directory)
    yield runtime
    runtime.relay.close()


def _spool(rt: Runtime, rcpt: str) -> str:
    qid = new_queue_id()
    rt.spool.create(Entry(id=qid, sender="bob@example.test", recipients=[Recipient(address=rcpt)],
                          size=len(BODY), received_at=rt.clock.now()), [BODY])
    return qid


def _inbox(rt: Runtime) -> list[str]:
    root = rt.config.data_dir / "mail" / "example.test" / "alice" / "Maildir" / "new"
    return os.listdir(root) if root.exists() else []


def test_local_mail_is_delivered_while_every_slot_of_a_stalled_destination_is_taken(rt, stall):
    remote = [_spool(rt, f"r{i}@stall.test") for i in range(3)]
    local = _spool(rt, "alice@example.test")
    with ThreadPoolExecutor(max_workers=WORKER_THREADS) as pool:
        stuck = [pool.submit(rt.pipeline.run, qid, "smtp_in") for qid in remote[:2]]
        wait_for(lambda: stall.stalled == 2, timeout=10, what="both slots stalled")
        held = pool.submit(rt.pipeline.run, remote[2], "smtp_in")
        held.result(timeout=5)                            # returned at once: no thread waits for a slot
        pool.submit(rt.pipeline.run, local, "smtp_in").result(timeout=5)
        assert stall.stalled == 2 and len(_inbox(rt)) == 1        # delivered while the slots are stalled
        waiting = rt.spool.load(remote[2])
        assert waiting.state == State.DEFERRED and waiting.last_error.startswith("4.4.5 ")
        assert 1.0 <= waiting.next_attempt - rt.clock.now() <= 60.0          # soon, via the spool
        assert waiting.recipients[0].attempts == 0                            # not counted as a try
        stall.release.set()
        for future in stuck:
            future.result(timeout=10)
    rt.clock.advance(waiting.next_attempt - rt.clock.now())
    assert Scheduler(rt.spool, rt.publish, rt.config, rt.clock).tick().due == 1
    for stage, qid in list(rt.publish):
        rt.pipeline.run(qid, stage)
    assert [rt.spool.load(qid).state for qid in remote] == [State.DONE] * 3
    assert stall.accepted == 3
