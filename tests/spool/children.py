"""What the conformance suite runs in child processes (spawned: each opens its own spool handle)."""

from __future__ import annotations

import os
import signal
import time

from mailpipe.spool.model import State


def create_then_die(backend, entry, body: bytes, conn) -> None:
    """Create, report, and die by SIGKILL at once: no atexit, no flush, no close."""
    backend.open().create(entry, [body])
    conn.send("created")
    os.kill(os.getpid(), signal.SIGKILL)


def claim_and_hold(backend, queue_id: str, conn) -> None:
    """Claim the message, say so, and hold it until killed (bounded: 60 s)."""
    with backend.open().claim(queue_id) as claimed:
        conn.send(claimed is not None)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conn.poll(1.0)


def finish_once(backend, queue_id: str, barrier, results) -> None:
    """Race the sibling to finish the message; record whether this process did it."""
    spool = backend.open()
    barrier.wait(30)
    with spool.claim(queue_id) as claimed:
        if claimed is None:
            results.put(False)
            return
        claimed.entry.state = State.DONE
        claimed.entry.record(time.time(), "test", "done", str(os.getpid()))
        spool.save(claimed.entry)
        results.put(True)


def save_versions(backend, queue_id: str, count: int, conn) -> None:
    """Save ``count`` versions with len(last_error) == 1000 * attempts (a reader checks the pair)."""
    spool = backend.open()
    entry = spool.load(queue_id)
    conn.send("ready")
    for n in range(1, count + 1):
        entry.attempts = n % 50 + 1
        entry.last_error = "e" * (1000 * entry.attempts)
        spool.save(entry, durable=False)
    conn.send("done")


def open_spool_at(url: str, barrier, results) -> None:
    """Open (and so migrate) the spool at ``url`` at the same moment as the siblings."""
    from mailpipe.spool import spool_at
    barrier.wait(30)
    spool_at(url).close()
    results.put("opened")
