"""The scheduler and sweeper: the spool decides what runs, the broker only carries IDs.

One ``tick`` (every ``pipeline.sweep_interval`` seconds):

- deferred entries whose ``next_attempt`` is due become active and their queue
  ID is published to their stage (DESIGN guarantee 4: no Celery ETA); the
  spool's ``due(now)`` finds them from its index by next attempt, so a tick
  reads only what is due, never every deferred entry;
- active entries whose stage has not advanced for ``pipeline.sweep_after``
  seconds are republished, marked as a redelivery (a lost broker message, a
  broker that lost its contents); a duplicate is harmless because every stage
  is idempotent (``stale`` reads only the entries in the pipeline);
- traces of finished messages older than ``pipeline.trace_retention`` go;
- at the first tick and then every ``pipeline.sweep_after`` seconds the spool
  ``reconcile``s its index with the entries (what a crash between an entry write
  and its index row left).

Each entry is changed under its spool lock, so a worker busy with it is left
alone; a due ID is checked against the entry itself there (the index is a hint).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from collections.abc import Callable

from mailpipe.core.clock import Clock
from mailpipe.core.config import Config
from mailpipe.core.errors import TransientError
from mailpipe.spool.interface import Spool
from mailpipe.spool.model import State

log = logging.getLogger("mailpipe.scheduler")


@dataclass
class TickResult:
    due: int = 0
    swept: int = 0
    purged: int = 0
    failed: int = 0
    reconciled: int | None = None       #: entries checked against the index (None: not this tick)


DUE_BATCH = 1000        #: due entries republished per tick at most (the rest at the next tick)


class Scheduler:
    def __init__(self, spool: Spool, publish: Callable[..., object], config: Config, clock: Clock) -> None:
        self.spool, self.publish, self.config, self.clock = spool, publish, config, clock
        self._reconciled_at: float | None = None

    def tick(self) -> TickResult:
        result = TickResult()
        now = self.clock.now()
        if self._reconciled_at is None or now - self._reconciled_at >= self.config.pipeline.sweep_after:
            result.reconciled, self._reconciled_at = self.spool.reconcile(), now
        for queue_id in self.spool.due(now, DUE_BATCH):
            self._republish(queue_id, "due", result, now)
        for queue_id in list(self.spool.stale(now - self.config.pipeline.sweep_after)):
            self._republish(queue_id, "sweep", result, now)
        result.purged = self.spool.purge_done(now - self.config.pipeline.trace_retention)
        self.spool.purge_orphans(now - 3600)
        return result

    def _republish(self, queue_id: str, why: str, result: TickResult, now: float) -> None:
        with self.spool.lock(queue_id) as owned:
            if not owned:
                return
            try:
                entry = self.spool.load(queue_id)
            except (FileNotFoundError, ValueError):      # finished meanwhile, or corrupt (listed as such)
                return
            due = entry.state == State.DEFERRED and (entry.next_attempt or 0) <= now
            stale = entry.state == State.ACTIVE and now - entry.updated_at >= self.config.pipeline.sweep_after
            if not (due if why == "due" else stale):      # the index was behind: reconcile repairs it
                return
            entry.state, entry.next_attempt = State.ACTIVE, None
            self.spool.save(entry)
        try:
            self.publish(entry.stage, queue_id, redelivered=(why == "sweep"))
        except TransientError as exc:
            result.failed += 1
            log.warning("%s: republish to %s failed (%s); will retry", queue_id, entry.stage, exc)
            return
        if why == "due":
            result.due += 1
        else:
            result.swept += 1
        log.info("%s: stage=%s, republished (%s)", queue_id, entry.stage, why)
