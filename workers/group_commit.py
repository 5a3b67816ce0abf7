"""Group commit for the ingress: queue IDs accepted at the same moment share one broker message.

Every accepted message must be on the ``smtp_in`` queue, confirmed, before the
ingress answers 250. Publishing each queue ID on its own costs a broker round
trip, a broker message and a Celery task per mail; under load many sessions
wait for a confirm at the same moment. ``GroupPublisher`` lets them share:
a caller hands its queue ID over and waits; a flusher thread takes everything
that is waiting (at most ``max_batch`` IDs), publishes it as one task message
whose argument is the list of IDs, and wakes each caller with the outcome.
Nothing waits for a timer: one caller alone is published at once, and the
batches grow only while a publish is in flight, so latency stays one round
trip. ``flushers`` threads publish concurrently.

If the publish fails, every caller of that batch gets ``BrokerUnavailable``
(each one then answers 451 and removes its spool file: nothing is half
accepted). A worker that receives a batch runs its IDs one after the other; a
batch that comes back redelivered (its worker died) is split into one task
per ID, so one message that kills its worker cannot take its neighbours to
the dead-letter state with it (``workers.app``).

Must not: know about spool files, stages or a particular broker (it is given a
``publish_many(stage, ids)``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from core.errors import BrokerUnavailable

PublishMany = Callable[[str, list[str]], None]


class _Waiter:
    """One caller: ``done`` is a lock held until its batch is published (a wake-up for it alone)."""
    __slots__ = ("stage", "queue_id", "done", "error")

    def __init__(self, stage: str, queue_id: str) -> None:
        self.stage, self.queue_id = stage, queue_id
        self.done = threading.Lock()
        self.done.acquire()
        self.error: BaseException | None = None


class GroupPublisher:
    """``publisher(stage, queue_id)``: returns once the broker confirmed it, or raises BrokerUnavailable."""

    def __init__(self, publish_many: PublishMany, max_batch: int = 16, flushers: int = 2,
                 timeout: float = 60.0) -> None:
        self.publish_many = publish_many
        self.max_batch, self.flushers, self.timeout = max(1, max_batch), max(1, flushers), timeout
        self._pending: deque[_Waiter] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def __call__(self, stage: str, queue_id: str) -> None:
        waiter = _Waiter(stage, queue_id)
        with self._cond:
            if self._closed:
                raise BrokerUnavailable("publisher closed")
            self._start_flushers()
            self._pending.append(waiter)
            self._cond.notify()                      # one flusher; callers are woken one by one
        if not waiter.done.acquire(timeout=self.timeout):
            with self._cond:
                if waiter in self._pending:
                    self._pending.remove(waiter)
            raise BrokerUnavailable(f"publish to {stage} not confirmed within {self.timeout:.0f}s")
        if waiter.error is not None:       # one exception object per caller, not one shared by threads
            raise BrokerUnavailable(str(waiter.error)) from None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(10)

    # -- flusher threads -------------------------------------------------
    def _start_flushers(self) -> None:
        if not self._threads:
            self._threads = [threading.Thread(target=self._flush_loop, name=f"group-commit-{i}", daemon=True)
                             for i in range(self.flushers)]
            for thread in self._threads:
                thread.start()

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                batch = self._take()
            error = self._publish(batch)
            for waiter in batch:
                waiter.error = error
                waiter.done.release()

    def _take(self) -> list[_Waiter]:
        """Up to ``max_batch`` waiting IDs of the stage that waits longest."""
        stage = self._pending[0].stage
        batch, rest = [], deque()
        while self._pending and len(batch) < self.max_batch:
            waiter = self._pending.popleft()
            (batch if waiter.stage == stage else rest).append(waiter)
        self._pending.extendleft(reversed(rest))
        return batch

    def _publish(self, batch: list[_Waiter]) -> BaseException | None:
        try:
            self.publish_many(batch[0].stage, [w.queue_id for w in batch])
        except BrokerUnavailable as exc:
            return exc
        except Exception as exc:                     # noqa: BLE001 - any failure means "not confirmed"
            return BrokerUnavailable(f"publish to {batch[0].stage} failed: {type(exc).__name__}: {exc}")
        return None
