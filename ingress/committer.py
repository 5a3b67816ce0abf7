"""Group commit at the ingress: messages accepted together are spooled and published together.

A message may be answered ``250`` only once its spool file and the spool
directory are fsynced and the broker has confirmed its queue ID on the
``smtp_in`` queue. Doing that per message costs a thread hand-off, two fsyncs,
a broker round trip, a broker message and a Celery task each; under load many
sessions reach that point at the same moment. ``Committer.commit`` queues the
message on the event loop; once per loop iteration the waiting messages (at
most ``max_batch``) go to a commit thread as one batch: each file written and
fsynced, one directory fsync, then one confirmed publish whose task argument
is the list of queue IDs (``workers.app.publish_many``). The thread hands the
results back in one call, and each session answers. Nothing waits for a
timer: a message alone goes at once. While a batch is in flight, the
messages that arrive wait for it and go together as the next batch; another
thread takes a batch at the same time only once half of ``max_batch``
messages wait (a disk whose fsync is slow), up to ``threads`` batches in
flight. Fewer, larger batches cost less: every batch is a directory fsync, a
broker message with its confirm, delivery and ack, and a Celery task (the
README's benchmark section has the figures).

If the publish fails, every message of that batch is removed from the spool
and its session answers 451: nothing is half accepted. A worker that receives
a batch runs its IDs one after the other; a batch that comes back redelivered
(its worker died) is split into one task per ID, so a message that kills its
worker cannot take its neighbours to the dead-letter state (``workers.app``).

Must not: parse SMTP or know a particular broker (it is given ``publish_many(stage, ids)``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mailpipe.core.errors import BrokerUnavailable
from mailpipe.spool.interface import Spool
from mailpipe.spool.model import Entry

log = logging.getLogger("mailpipe.ingress")

STAGE = "smtp_in"

PublishMany = Callable[[str, list[str]], None]
Message = tuple[Entry, list[bytes], asyncio.Future]


class Committer:
    def __init__(self, spool: Spool, publish_many: PublishMany, executor: ThreadPoolExecutor, *,
                 threads: int, max_batch: int, timeout: float = 60.0) -> None:
        self.spool, self.publish_many, self.executor = spool, publish_many, executor
        self.threads, self.max_batch, self.timeout = max(1, threads), max(1, max_batch), timeout
        self.spill = max(1, self.max_batch // 2)   #: messages waiting that justify another batch in flight
        self._waiting: list[Message] = []
        self._abandoned: set[str] = set()     #: queue IDs whose session gave up waiting (timeout)
        self._in_flight = 0
        self._scheduled = False

    async def commit(self, entry: Entry, chunks: list[bytes]) -> None:
        """Return once the message is durable and published; raise ``SpoolFull`` or
        ``BrokerUnavailable`` (then nothing of it is left in the spool)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((entry, chunks, future))
        if not self._scheduled:          # every message that arrives in this loop iteration joins
            self._scheduled = True
            loop.call_soon(self._dispatch, loop)
        try:
            await asyncio.wait_for(future, self.timeout)
        except TimeoutError:             # a broker that never confirms (e.g. a RabbitMQ resource alarm)
            self._give_up(entry.id)
            raise BrokerUnavailable(f"publish to {STAGE} not confirmed within {self.timeout:.0f}s") from None

    def _give_up(self, queue_id: str) -> None:
        """The session answers 4xx: the message must not be delivered later. Not yet taken:
        drop it; in flight: remove its file now (the sweeper must not find it) and again
        once its batch returns, should the commit thread still have been writing it."""
        waiting = len(self._waiting)
        self._waiting = [m for m in self._waiting if m[0].id != queue_id]
        if len(self._waiting) == waiting:
            self._abandoned.add(queue_id)
            self.spool.delete(queue_id)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        while self._waiting and self._in_flight < self.threads:
            if self._in_flight and len(self._waiting) < self.spill:
                break                      # they go together once the batch in flight returns
            batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            self._in_flight += 1
            done = loop.run_in_executor(self.executor, self._commit, [(e, c) for e, c, _ in batch])
            done.add_done_callback(functools.partial(self._answer, loop, batch))

    def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[Message], outcome: asyncio.Future) -> None:
        self._in_flight -= 1
        try:
            errors = outcome.result()
        except BaseException as exc:       # noqa: BLE001 - a bug in _commit must still answer every session
            log.exception("commit of %d messages failed", len(batch))
            errors = [BrokerUnavailable(f"commit failed: {type(exc).__name__}") for _ in batch]
        for (entry, _, future), error in zip(batch, errors):
            if entry.id in self._abandoned:
                self._abandoned.discard(entry.id)
                self.spool.delete(entry.id)
                continue
            if future.done():              # its session was cancelled (shutdown)
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        self._dispatch(loop)

    def _commit(self, batch: list[tuple[Entry, list[bytes]]]) -> list[Exception | None]:
        """In a commit thread: spool every message durably, then publish the spooled ones at once."""
        errors: list[Exception | None] = list(self.spool.create_many(batch))
        spooled = [entry.id for (entry, _), error in zip(batch, errors) if error is None]
        if not spooled:
            return errors
        try:
            self.publish_many(STAGE, spooled)
        except Exception as exc:           # noqa: BLE001 - any failure means "not confirmed"
            for queue_id in spooled:
                self.spool.delete(queue_id)
            unexpected = not isinstance(exc, BrokerUnavailable)
            if unexpected:
                log.error("publish of %d messages failed", len(spooled), exc_info=exc)
            kind = RuntimeError if unexpected else BrokerUnavailable   # RuntimeError: the session answers
            errors = [e if e is not None else kind(str(exc)) for e in errors]  # "local error", no detail
        return errors

