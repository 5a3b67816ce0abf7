"""The scheduler and sweeper: the spool decides what runs, the broker only carries IDs.

One ``tick`` (every ``pipeline.sweep_interval`` seconds):

- deferred entries whose ``next_attempt`` is due become active and their queue
  ID is published to their stage (DESIGN guarantee 4: no Celery ETA);
- active entries whose stage has not advanced for ``pipeline.sweep_after``
  seconds are republished, marked as a redelivery (a lost broker message, a
  broker that lost its contents); a duplicate is harmless because every stage
  is idempotent;
- traces of finished messages older than ``pipeline.trace_retention`` go.

Each entry is changed under its spool lock, so a worker busy with it is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailpipe.core.clock import Clock
from mailpipe.core.errors import TransientError
from mailpipe.spool.model import State

log = logging.getLogger("mailpipe.scheduler")


@dataclass
class TickResult:
    due: int = 0
    swept: int = 0
    purged: int = 0
    failed: int = 0


class Scheduler:
    def __init__(self, spool, publish, config, clock: Clock) -> None:
        self.spool, self.publish, self.config, self.clock = spool, publish, config, clock

    def tick(self) -> TickResult:
        result = TickResult()
        now = self.clock.now()
        for entry in self.spool.entries():
            due = entry.state == State.DEFERRED and (entry.next_attempt or 0) <= now
            stale = (entry.state == State.ACTIVE
                     and now - entry.updated_at >= self.config.pipeline.sweep_after)
            if due or stale:
                self._republish(entry.id, "due" if due else "sweep", result)
        result.purged = self.spool.purge_done(now - self.config.pipeline.trace_retention)
        self.spool.purge_orphans(now - 3600)
        return result

    def _republish(self, queue_id: str, why: str, result: TickResult) -> None:
        with self.spool.lock(queue_id) as owned:
            if not owned:
                return
            entry = self.spool.load(queue_id)
            if entry.state not in (State.DEFERRED, State.ACTIVE):
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
