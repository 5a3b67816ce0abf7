"""Connection admission for every SMTP listener together: counts (total, per client IP) and
the memory of clients that passed the greet pause.

Owns: admission of a new connection (``acquire``) and its release. Pure
bookkeeping, no I/O; the event loop calls it from one thread.
Must not: reply to clients (the shell does, with ``replies.TOO_MANY_*``).
"""

from __future__ import annotations

from mailpipe.core.clock import Clock
from mailpipe.ingress import replies


class ConnectionLimits:
    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self.count = 0
        self.by_ip: dict[str, int] = {}

    def acquire(self, ip: str) -> str | None:
        """None if admitted (then ``release`` must follow), else the 421 reply."""
        if self.count >= self.total:
            return replies.TOO_MANY_CONNECTIONS
        if self.by_ip.get(ip, 0) >= self.per_ip:
            return replies.TOO_MANY_FROM_IP
        self.count += 1
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        return None

    def release(self, ip: str) -> None:
        self.count -= 1
        left = self.by_ip.get(ip, 1) - 1
        if left > 0:
            self.by_ip[ip] = left
        else:
            self.by_ip.pop(ip, None)


class PassedClients:
    """IPs that recently waited for the greeting (so they skip the greet pause), as postscreen does.

    Time comes from the injected clock; the table is bounded (cleared when it grows past ``max_size``).
    """

    def __init__(self, ttl: float, clock: Clock, max_size: int = 100_000) -> None:
        self.ttl, self.clock, self.max_size = ttl, clock, max_size
        self._until: dict[str, float] = {}

    def passed(self, ip: str) -> bool:
        until = self._until.get(ip)
        if until is None:
            return False
        if until < self.clock.now():
            del self._until[ip]
            return False
        return True

    def remember(self, ip: str) -> None:
        if len(self._until) >= self.max_size:
            self._until.clear()
        self._until[ip] = self.clock.now() + self.ttl
