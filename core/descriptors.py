"""File-descriptor headroom for servers that share one process (SMTP, IMAP, POP3).

Owns: how many descriptors the process may still open (``free()``, from
``RLIMIT_NOFILE`` and ``/proc/self/fd``) and the reserve below which the mail
access servers refuse new connections (``DescriptorReserve``), so that IMAP or
POP3 connections can never take the descriptors the SMTP ingress, the spool
and the broker need. The reserve is a quarter of the soft limit, at least
``MIN_RESERVE``: under the common 1,024 limit 256 stay free.

Counting ``/proc/self/fd`` costs one directory listing; it is done at most once
per ``CHECK_EVERY`` admissions while far from the reserve, so accepting stays cheap.

Must not: raise the limit itself (``ops`` does at start) or close anything.
"""

from __future__ import annotations

import os
import resource

MIN_RESERVE = 64
CHECK_EVERY = 16        #: admissions between counts while more than twice the reserve is free


def soft_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def open_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:             # no /proc: count nothing, refuse nothing
        return 0


def free() -> int:
    return soft_limit() - open_count()


def reserve_for(limit: int) -> int:
    return max(MIN_RESERVE, limit // 4)


class DescriptorReserve:
    """``admit()`` is False while fewer than the reserve descriptors are free."""

    def __init__(self, reserve: int | None = None) -> None:
        self.fixed = reserve
        self._skip = 0

    def admit(self) -> bool:
        if self._skip > 0:
            self._skip -= 1
            return True
        limit = soft_limit()
        reserve = self.fixed if self.fixed is not None else reserve_for(limit)
        available = limit - open_count()
        if available > 2 * reserve + CHECK_EVERY:
            self._skip = CHECK_EVERY      # far from the reserve: the next few cannot reach it
        return available > reserve
