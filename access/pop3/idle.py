"""The timeouts of one connection, with one timer per idle period instead of one per read.

Two limits: ``idle`` seconds since the last *completed* command (the shell
calls ``touch()`` when a command line was handled, never on mere bytes, so a
client trickling a byte at a time cannot keep a half-sent command alive), and
an optional absolute ``until`` (the pre-login deadline) that nothing extends.

``asyncio.timeout()`` around every read costs a timer-heap insert and cancel
per command; at thousands of commands per second that shows. The watchdog
keeps the time of the last client activity and, when its single timer fires
early, re-arms it for the remaining time. It cancels the connection task only
while the task waits for the client (``waiting``), never in the middle of a
login check or an UPDATE, so a timeout can never interrupt a deletion.

Must not: know about POP3.
"""

from __future__ import annotations

import asyncio

OVERDUE_RECHECK = 0.05   #: seconds between checks once past `until` while the connection is busy


class IdleWatchdog:
    def __init__(self, idle: float, task: asyncio.Task, progress=lambda: 0, now=None,
                 until: float | None = None) -> None:
        """`progress()` returns the bytes still queued for the client; a change counts as activity.

        `now` defaults to the loop's clock; tests pass a fake one and call ``check()``.
        """
        self.idle = idle
        self.task = task
        self.progress = progress
        self._queued = progress()
        self.loop = asyncio.get_running_loop()
        self.now = now or self.loop.time
        self.last = self.now()
        self.until = until          #: absolute deadline (same clock as `now`), None: none
        self.waiting = False
        self.expired = False
        first = idle if until is None else max(0.0, min(idle, until - self.now()))
        self._handle = self.loop.call_at(self.loop.time() + first, self.check)

    def touch(self) -> None:
        self.last = self.now()

    def cancel(self) -> None:
        self._handle.cancel()

    def check(self) -> None:
        """The timer fired: expire if idle too long while waiting on the client, else re-arm."""
        now = self.now()
        queued = self.progress()
        if queued != self._queued:          # a slow client is still downloading
            self._queued, self.last = queued, now
        overdue = self.until is not None and now >= self.until
        if (now - self.last >= self.idle or overdue) and self.waiting:
            self.expired = True
            self.task.cancel()
            return
        remaining = self.idle - (now - self.last) if now - self.last < self.idle else self.idle
        if self.until is not None:      # overdue while busy (a login check): look again soon, never spin
            remaining = max(OVERDUE_RECHECK, min(remaining, self.until - now))
        self._handle.cancel()
        self._handle = self.loop.call_later(remaining, self.check)

    async def wait(self, awaitable):
        """Await something the client controls (a read, a drain); raises TimeoutError when idle too long."""
        self.waiting = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self.expired:
                raise
            self.task.uncancel()
            raise TimeoutError("idle") from None
        finally:
            self.waiting = False
