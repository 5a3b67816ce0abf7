"""Deferral: a message goes back to the spool with its next attempt time.

Nothing waits in a worker's memory (DESIGN guarantee 4): the scheduler
(``workers/scheduler.py``) republishes deferred entries when they are due.
The delay is the one retry policy of mailpipe, the ``[relay]`` schedule
(``delivery.retry``), for every kind of deferral: a filter daemon down, a
full or failing disk, any ``TransientError`` of a stage. The remote stage
uses the same policy with the message lifetime on top (``stages/remote.py``).

Owns also ``storage_failure``: which ``OSError``s mean "the storage is full or
failing right now" (ENOSPC, EDQUOT, EIO, EROFS), so that the pipeline defers
instead of dead-lettering a message whose only fault is where it was going.

Must not: publish anything, or compute delays other than through ``delivery.retry``.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING

from mailpipe.core import metrics
from mailpipe.delivery.retry import retry_at
from mailpipe.spool.model import Entry, State

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

log = logging.getLogger("mailpipe.defer")

#: errno -> how an operator says it; these are temporary in any stage
STORAGE_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
                  errno.EIO: "disk I/O error", errno.EROFS: "file system read-only"}
_MAX_CHAIN = 8      #: how deep ``storage_failure`` follows __cause__/__context__


def defer(rt: Runtime, entry: Entry, stage: str, reason: str, retry_after: float | None = None) -> None:
    """Put an entry back in the spool to wait; the scheduler republishes it when due.

    ``retry_after`` replaces ``[relay] retry_first`` as the first step of the
    backoff for deferrals with their own (``[antivirus] retry_after``)."""
    now = rt.clock.now()
    entry.attempts += 1
    when = retry_at(entry.attempts, now, rt.config.relay, retry_after)
    entry.state = State.DEFERRED
    entry.stage = stage
    entry.next_attempt = when
    entry.last_error = reason
    entry.record(now, stage, "deferred", f"{reason}; next attempt in {when - now:.0f}s")
    log.warning("%s: stage=%s, status=deferred (%s), next attempt in %.0fs", entry.id, stage, reason, when - now)
    metrics.deferred(stage)


def storage_failure(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` (or what caused it) is a full or failing disk, else None."""
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            where = f" writing {seen.filename}" if seen.filename else ""
            return f"{STORAGE_ERRNOS[seen.errno]} ({seen.strerror}){where}"
        seen = seen.__cause__ or seen.__context__
    return None
