"""Runs stages for one queue ID: load, run, record, pass on. Idempotent on the queue ID.

Owns: stage order, the per-message lock, crash counting (poison messages go to
the ``dead`` state with the stage that failed), unexpected exceptions, and
*fusion*: when this worker also serves the next stage, that stage runs in the
same task instead of costing another broker hop. Every stage keeps its own
queue, so a deployment that runs a stage elsewhere still works: the entry is
saved with its next stage and the queue ID is published there.

A task whose entry is gone, locked by another worker, not active, or already
past this stage is a duplicate (redelivery, sweeper) and is dropped. A task
the broker marks as redelivered (its worker died, or the sweeper republished
it) counts against ``[pipeline] max_redeliveries`` and makes side-effecting
stages check what an earlier run already did (``recovering``).

A stage that raises ``TransientError`` is deferred with the retry schedule
(``workers.deferral``); so is one that fails because its storage is full or
failing (ENOSPC, EDQUOT, EIO, EROFS in any stage: ``deferral.storage_failure``),
and it is delivered once space returns. Any other exception is a crash: the
message goes to ``dead`` with the stage that failed, its body kept.

Must not: implement a stage (``workers/stages``) or talk to the broker other
than through ``runtime.publish``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from mailpipe.broker.topology import base_stage
from mailpipe.core import metrics
from mailpipe.core.config import Config
from mailpipe.core.errors import TransientError
from mailpipe.spool.model import Entry, State
from mailpipe.workers.deferral import defer, storage_failure
from mailpipe.workers.stages import STAGE_FUNCTIONS
from mailpipe.workers.stages.local import next_local_stage

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

log = logging.getLogger("mailpipe.pipeline")


class Pipeline:
    def __init__(self, runtime: Runtime, served: frozenset[str]) -> None:
        self.rt = runtime
        self.served = served
        config = runtime.config
        self.order = self.order_for(config)

    @staticmethod
    def order_for(config: Config) -> list[str]:
        return ["smtp_in", *config.pipeline.filters, "route", "local", "remote"]

    def next_stage(self, entry: Entry, stage: str) -> str | None:
        """The next stage with work to do for this entry, or None when finished.

        Local delivery is one stage per mail host (``local``, ``local.<host>``): after
        route, and after each of them, the next mail host with mailboxes left."""
        base = base_stage(stage)
        if base == "local" and (host_stage := next_local_stage(self.rt, entry)) is not None:
            return host_stage
        nxt = self._next_in(self.order, entry, base)
        return next_local_stage(self.rt, entry) if nxt == "local" else nxt

    @staticmethod
    def _next_in(order: list[str], entry: Entry, stage: str) -> str | None:
        index = order.index(stage) + 1 if stage in order else len(order)
        for candidate in order[index:]:
            if candidate == "local" and not entry.open_recipients("local"):
                continue
            if candidate == "remote" and not entry.open_recipients("remote"):
                continue
            return candidate
        return None

    def run(self, queue_id: str, stage: str, redelivered: bool = False) -> None:
        spool = self.rt.spool
        with spool.claim(queue_id) as claimed:
            if claimed is None:
                log.info("%s: stage=%s, skipped (locked by another worker or gone)", queue_id, stage)
                return
            entry = claimed.entry
            if entry.state != State.ACTIVE or entry.stage != stage:
                log.info("%s: stage=%s, duplicate task dropped (state=%s, stage=%s)",
                         queue_id, stage, entry.state, entry.stage)
                return
            if redelivered and self._poisoned(entry):
                return
            handed_to = self._run_from(entry, stage, redelivered, claimed.message)
        if handed_to is not None:    # publish after unlocking, or the next stage's worker finds it locked
            self.rt.publish(handed_to, queue_id)      # if this fails, the sweeper republishes later

    def run_batch(self, queue_ids: list[str], stage: str) -> None:
        """Run IDs accepted together (``ingress.committer``) one after the other. An
        error on one is logged and leaves it to the sweeper; the others still run."""
        for queue_id in queue_ids:
            try:
                self.run(queue_id, stage)
            except Exception:
                log.exception("%s: stage=%s, failed inside a batch; the sweeper republishes it", queue_id, stage)

    def _poisoned(self, entry: Entry) -> bool:
        """Count a redelivery; too many mean the message crashes its worker: dead-letter it."""
        entry.redeliveries += 1
        if entry.redeliveries > self.rt.config.pipeline.max_redeliveries:
            entry.state = State.DEAD
            entry.last_error = f"redelivered {entry.redeliveries - 1} times in stage {entry.stage}"
            entry.record(self.rt.clock.now(), entry.stage, "dead", entry.last_error)
            self.rt.spool.save(entry)
            log.error("%s: stage=%s, status=dead (%s)", entry.id, entry.stage, entry.last_error)
            return True
        entry.record(self.rt.clock.now(), entry.stage, "redelivered", f"#{entry.redeliveries}")
        self.rt.spool.save(entry)
        return False

    def _run_from(self, entry: Entry, stage: str | None, recovering: bool, message: bytes) -> str | None:
        """Run stages from ``stage``; return the stage handed over to another worker, if any."""
        while stage is not None:
            entry.stage = stage
            started = time.perf_counter()
            try:
                STAGE_FUNCTIONS[base_stage(stage)](self.rt, entry, message, recovering)
            except TransientError as exc:
                self._defer(entry, stage, str(exc))
                break
            except Exception as exc:
                self._failed(entry, stage, exc)
                break
            entry.trace[-1].ms = round((time.perf_counter() - started) * 1000, 3) if entry.trace else None
            metrics.stage_done(stage, time.perf_counter() - started, entry.trace[-1] if entry.trace else None)
            if entry.state != State.ACTIVE:
                break
            nxt = self.next_stage(entry, stage)
            if nxt is None:
                entry.state = State.DONE
                entry.record(self.rt.clock.now(), stage, "done", _summary(entry))
                break
            if nxt not in self.served:
                self._hand_over(entry, nxt)
                return nxt
            stage = nxt
        self.rt.spool.save(entry)
        return None

    def _hand_over(self, entry: Entry, stage: str) -> None:
        entry.stage = stage
        self.rt.spool.save(entry)

    def _defer(self, entry: Entry, stage: str, reason: str, retry_after: float | None = None) -> None:
        defer(self.rt, entry, stage, reason, retry_after)

    def _failed(self, entry: Entry, stage: str, exc: Exception) -> None:
        """A full or failing disk defers. Anything else is a crash of the stage: it is
        deferred on the retry schedule (a bug that a restart, a new rules file or a
        daemon's recovery may cure), and only the ``[pipeline] max_redeliveries``-th
        crash moves the message to ``dead``, with its stage."""
        storage = storage_failure(exc)
        if storage is not None:
            self._defer(entry, stage, f"{storage} in stage {stage}")
            return
        entry.failures += 1
        limit = self.rt.config.pipeline.max_redeliveries
        if entry.failures < limit:
            log.exception("%s: stage=%s, unexpected error %d of %d; deferred", entry.id, stage, entry.failures, limit)
            self._defer(entry, stage, f"unexpected error in stage {stage} ({entry.failures} of {limit})")
            return
        log.exception("%s: stage=%s, unexpected error %d of %d; moved to dead", entry.id, stage, entry.failures, limit)
        entry.state = State.DEAD
        entry.last_error = f"unexpected error in stage {stage} ({entry.failures} times)"
        entry.record(self.rt.clock.now(), stage, "dead", entry.last_error)


def _summary(entry: Entry) -> str:
    counts: dict[str, int] = {}
    for r in entry.recipients:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
