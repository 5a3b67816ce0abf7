"""Connection limits shared by all IMAP sessions of one service: per user and per client IP.

Owns: counting open connections; ``acquire`` refuses beyond the configured
limits. Thread-safe (session commands run in worker threads).

Must not: close connections itself; the session answers NO / BYE.
"""

from __future__ import annotations

import threading
from collections import Counter


class Registry:
    def __init__(self, per_user: int, per_ip: int) -> None:
        self.per_user, self.per_ip = per_user, per_ip
        self._users: Counter[str] = Counter()
        self._ips: Counter[str] = Counter()
        self._lock = threading.Lock()

    def connect(self, ip: str) -> bool:
        with self._lock:
            if self._ips[ip] >= self.per_ip:
                return False
            self._ips[ip] += 1
            return True

    def disconnect(self, ip: str) -> None:
        with self._lock:
            self._ips[ip] -= 1
            if self._ips[ip] <= 0:
                del self._ips[ip]

    def acquire(self, user: str, ip: str) -> bool:
        with self._lock:
            if self._users[user] >= self.per_user:
                return False
            self._users[user] += 1
            return True

    def release(self, user: str) -> None:
        with self._lock:
            self._users[user] -= 1
            if self._users[user] <= 0:
                del self._users[user]
