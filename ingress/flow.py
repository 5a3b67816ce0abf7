"""Ingress flow control: a new message waits while the pipeline's entry queue is backed up.

Without it the ingress, which is cheaper per message than delivery, takes the
CPU from the workers under load: the queue grows by hundreds of messages a
second and a message waits seconds between ``250`` and delivery. Postfix's
answer is ``in_flow_delay`` (pause before accepting a new message while
arrival outpaces delivery, at most one second); this is the same.

A thread reads the backlog (ready broker messages on the ``smtp_in`` queue,
each one batch of queue IDs, see ``ingress.committer``) every ``interval``
seconds through an injected ``probe``. ``admit`` is awaited by a session at
``MAIL FROM``: it returns at once while the backlog is at most ``limit``;
otherwise it waits until the probe sees the backlog drop, or ``delay`` seconds,
whichever comes first, and then the session goes on: flow control slows
clients down, it never refuses them. A probe that fails (broker unreachable)
reads as no backlog: the commit reports the broker's state to the client.

Must not: know a broker (the broker's ``backlog_probe`` does), refuse mail, or block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("mailpipe.ingress")

Probe = Callable[[], "int | None"]


class FlowGate:
    def __init__(self, probe: Probe, *, limit: int, delay: float, interval: float = 0.1) -> None:
        self.probe, self.limit, self.delay, self.interval = probe, limit, delay, interval
        self.backlog: int | None = None      #: the last probe reading (None: not read or unknown)
        self.paused = 0                      #: sessions that had to wait
        self.timed_out = 0                   #: of them, those that went on after ``delay``
        self._open: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def congested(self) -> bool:
        return self.backlog is not None and self.backlog > self.limit

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start polling; ``admit`` must then be awaited on ``loop``."""
        self._loop, self._open = loop, asyncio.Event()
        self._open.set()
        self._thread = threading.Thread(target=self._run, name="ingress-flow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval)

    def poll_once(self) -> None:
        """Read the backlog once and open or close the gate (called by the polling thread)."""
        try:
            backlog = self.probe()
        except Exception:                       # an unreadable backlog must not stop mail
            log.debug("flow control: backlog probe failed", exc_info=True)
            backlog = None
        was = self.congested
        self.backlog = backlog
        if self.congested != was:
            log.info("flow control: smtp_in backlog %s %s %d, %s new messages", backlog,
                     ">" if self.congested else "<=", self.limit, "pausing" if self.congested else "resuming")
            if self._loop is not None and self._open is not None:
                self._loop.call_soon_threadsafe(self._open.clear if self.congested else self._open.set)

    async def admit(self) -> float:
        """Wait while the entry queue is backed up, at most ``delay`` s; return the seconds waited."""
        if self._open is None or self._open.is_set() or self.delay <= 0:
            return 0.0
        self.paused += 1
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._open.wait(), self.delay)
        except TimeoutError:
            self.timed_out += 1
        return time.monotonic() - started
