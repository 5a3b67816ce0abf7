"""Failed-login limiting, one limiter per process shared by SMTP AUTH, IMAP and POP3.

The interface (``LoginLimiter``) is three calls around one password check:

    ticket = limiter.reserve(ip, account)     # None: locked out, do not check the password
    ... check the password ...
    limiter.success(ticket)  /  delay = limiter.failure(ticket)  /  limiter.release(ticket)

``reserve`` checks and counts in one step: it counts the attempt as a failure
of both the client address and the target account before the password is
checked, so N parallel attempts can never get more than the limit of checks.
``success`` takes back the address's reserved count and clears only that
account's record (a correct login as one's own account never clears the
failures against another); ``failure`` leaves the count and returns the delay
(seconds) to wait before the reply (0.5 s, 1 s, 2 s ... capped at ``[auth]
failure_delay_cap``, 5 s by default, for every protocol);
``release`` takes the reservation back when no password was checked (e.g. the
directory was unavailable).

A client address is locked after ``max_failures`` failures within
``lockout_seconds`` of its first one; an account after
``max_account_failures`` (from any addresses) likewise. ``FailureLimiter`` keeps
the records in this process's memory, bounded (least recently touched records
are dropped first); a shared implementation (database, Redis) for several hosts
implements the same interface. Time comes from an injected clock: tests never sleep.

Must not: see passwords, do I/O, or know which protocol asks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from mailpipe.core.clock import Clock, SystemClock
from mailpipe.core.config import AuthConfig

MAX_RECORDS = 100_000


@dataclass(frozen=True)
class Ticket:
    """One reserved login attempt."""

    ip: str
    account: str


class LoginLimiter(Protocol):
    def reserve(self, ip: str, account: str) -> Ticket | None: ...

    def success(self, ticket: Ticket) -> None: ...

    def failure(self, ticket: Ticket) -> float: ...

    def release(self, ticket: Ticket) -> None: ...


@dataclass
class _Record:
    failures: int
    first: float


def account_key(account: str) -> str:
    """The account a login names, folded as the directory folds addresses."""
    return "acct:" + account.strip().rstrip(".").lower()


class FailureLimiter:
    """``LoginLimiter`` kept in this process's memory."""

    def __init__(self, max_failures: int = 5, lockout_seconds: float = 300.0,
                 clock: Clock | None = None, max_account_failures: int | None = None,
                 max_records: int = MAX_RECORDS, delay_cap: float = 5.0) -> None:
        self.max_failures = max_failures
        self.max_account_failures = max_account_failures or 2 * max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock or SystemClock()
        self.max_records = max_records
        self.delay_cap = delay_cap
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def reserve(self, ip: str, account: str) -> Ticket | None:
        ticket = Ticket("ip:" + ip, account_key(account))
        with self._lock:
            if self._count(ticket.ip) >= self.max_failures:
                return None
            if self._count(ticket.account) >= self.max_account_failures:
                return None
            self._add(ticket.ip, 1)
            self._add(ticket.account, 1)
        return ticket

    def success(self, ticket: Ticket) -> None:
        with self._lock:
            self._add(ticket.ip, -1)
            self._records.pop(ticket.account, None)

    def failure(self, ticket: Ticket) -> float:
        with self._lock:
            failures = max(self._count(ticket.ip), self._count(ticket.account), 1)
        return min(self.delay_cap, 0.5 * 2 ** (failures - 1))

    def release(self, ticket: Ticket) -> None:
        with self._lock:
            self._add(ticket.ip, -1)
            self._add(ticket.account, -1)

    def locked(self, ip: str) -> bool:
        """Whether a client address is locked out now (for status and tests)."""
        with self._lock:
            return self._count("ip:" + ip) >= self.max_failures

    # -- records (called with the lock held) ------------------------------------
    def _count(self, key: str) -> int:
        record = self._records.get(key)
        if record is None:
            return 0
        if self.clock.now() - record.first > self.lockout_seconds:
            del self._records[key]
            return 0
        return record.failures

    def _add(self, key: str, delta: int) -> None:
        record = self._records.get(key) if self._count(key) else None
        if record is None:
            if delta <= 0:
                return
            record = self._records[key] = _Record(0, self.clock.now())
        record.failures = max(0, record.failures + delta)
        self._records.move_to_end(key)
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)


def from_config(auth: AuthConfig, clock: Clock | None = None) -> FailureLimiter:
    """The process's limiter from ``[auth]``; serve and each role build one and pass it to every protocol."""
    return FailureLimiter(auth.max_failures, auth.lockout_seconds, clock,
                          max_account_failures=auth.max_account_failures, delay_cap=auth.failure_delay_cap)
