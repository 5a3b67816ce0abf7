"""Connection counting for every SMTP listener together: total and per client IP.

Owns: admission of a new connection (``acquire``) and its release. Pure
bookkeeping, no I/O; the event loop calls it from one thread.
Must not: reply to clients (the shell does, with ``replies.TOO_MANY_*``).
"""

from __future__ import annotations

from ingress import replies


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
