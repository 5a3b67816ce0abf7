"""Failed-login limiting per client IP, shared by SMTP AUTH, IMAP and POP3.

After each failure the client waits a growing delay (0.5 s, 1 s, 2 s ... capped
at 5 s) before the reply; after ``max_failures`` failures within the lockout
window the IP is locked out until the window has passed. A success clears the
record. Time comes from an injected clock, so tests never sleep.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mailpipe.core.clock import Clock, SystemClock


@dataclass
class _Record:
    failures: int
    first: float


class FailureLimiter:
    def __init__(self, max_failures: int = 5, lockout_seconds: float = 300.0,
                 clock: Clock | None = None) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock or SystemClock()
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def locked(self, ip: str) -> bool:
        with self._lock:
            record = self._current(ip)
            return record is not None and record.failures >= self.max_failures

    def failure(self, ip: str) -> float:
        """Record a failure; return the delay (seconds) to wait before replying."""
        with self._lock:
            record = self._current(ip)
            if record is None:
                record = self._records[ip] = _Record(0, self.clock.now())
            record.failures += 1
            if len(self._records) > 100_000:
                self._records.clear()
            return min(5.0, 0.5 * 2 ** (record.failures - 1))

    def success(self, ip: str) -> None:
        with self._lock:
            self._records.pop(ip, None)

    def _current(self, ip: str) -> _Record | None:
        record = self._records.get(ip)
        if record is not None and self.clock.now() - record.first > self.lockout_seconds:
            del self._records[ip]
            return None
        return record
