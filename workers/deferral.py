"""Deferral: a message goes back to the spool with its next attempt time.

Nothing waits in a worker's memory (DESIGN guarantee 4): the scheduler
(``workers/scheduler.py``) republishes deferred entries when they are due.
"""

from __future__ import annotations

import logging

from mailpipe.core import metrics
from mailpipe.spool.model import Entry, State

log = logging.getLogger("mailpipe.defer")


def defer(rt, entry: Entry, stage: str, reason: str, retry_after: float | None = None) -> None:
    """Put an entry back in the spool to wait; the scheduler republishes it when due."""
    now = rt.clock.now()
    base = retry_after or 60.0
    delay = min(base * (2 ** min(entry.attempts, 16)), 3600.0)
    entry.attempts += 1
    entry.state = State.DEFERRED
    entry.stage = stage
    entry.next_attempt = now + delay
    entry.last_error = reason
    entry.record(now, stage, "deferred", f"{reason}; next attempt in {delay:.0f}s")
    log.warning("%s: stage=%s, status=deferred (%s)", entry.id, stage, reason)
    metrics.deferred(stage)
