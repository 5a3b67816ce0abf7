"""Per-process runtime of a worker: the typed seams every stage is given (``rt``).

Owns: ``Runtime``, the one object a stage sees: the configuration, the clock,
the spool, the account directory, the ``publish`` callable, the filters, the
relay (built on first use) and the pipeline. Every field is typed, so a reader
and mypy can follow a message from ``Pipeline.run`` through each stage.

Built lazily on first use inside a worker process (so a forked or threaded
worker opens its own database connections), from the config the app was made
with. Tests build a ``Runtime`` directly with their own seams.

Must not: run stages or decide anything about a message; it only holds the seams.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import TYPE_CHECKING, Protocol

from celery import Celery

from mailpipe.core.clock import Clock, SystemClock
from mailpipe.core.config import Config
from mailpipe.filters.verdict import Filter
from mailpipe.mailstore.directory import Directory, open_directory
from mailpipe.spool import Spool, open_spool

if TYPE_CHECKING:
    from mailpipe.delivery.relay import Relay
    from mailpipe.workers.pipeline import Pipeline

log = logging.getLogger("mailpipe.worker")
_lock = threading.Lock()


class Publish(Protocol):
    """Put a queue ID on a stage's queue; returns once the broker has it (``workers.app.publish``)."""

    def __call__(self, stage: str, queue_id: str, redelivered: bool = False) -> None: ...


class Runtime:
    """The seams of one worker process; thread-safe (the relay is built once under a lock)."""

    config: Config
    clock: Clock
    spool: Spool
    directory: Directory
    publish: Publish
    filters: dict[str, Filter | None]
    pipeline: Pipeline

    def __init__(self, config: Config, *, publish: Publish, served: frozenset[str], clock: Clock | None = None,
                 directory: Directory | None = None, relay: Relay | None = None) -> None:
        from mailpipe.workers.pipeline import Pipeline
        from mailpipe.workers.stages import filter_stage

        self.config = config
        self.clock = clock or SystemClock()
        self.spool = open_spool(config)
        self.directory = directory or open_directory(config.db_url)
        self.publish = publish
        self.filters = filter_stage.build_filters(config)
        self._relay = relay
        self._relay_lock = threading.Lock()
        self.pipeline = Pipeline(self, served)

    @property
    def relay(self) -> Relay:
        """The ``delivery.relay.Relay`` of this process, built on first use (a worker without
        the remote stage never opens a resolver or a connection pool)."""
        if self._relay is None:
            with self._relay_lock:
                if self._relay is None:
                    from mailpipe.delivery.relay import Relay
                    self._relay = Relay.from_config(self.config, clock=self.clock)
        return self._relay

    @relay.setter
    def relay(self, value: Relay) -> None:
        self._relay = value


def served_stages(app: Celery) -> frozenset[str]:
    """The stages whose queues this worker consumes (from -Q / --stages)."""
    prefix = app.mailpipe_config.queue_prefix
    names = set(app.amqp.queues.consume_from or app.amqp.queues)
    return frozenset(n[len(prefix):] for n in names if n.startswith(prefix))


def runtime_for(app: Celery) -> Runtime:
    if app.mailpipe_runtime is None:
        with _lock:
            if app.mailpipe_runtime is None:
                from mailpipe.workers.app import publish
                app.mailpipe_runtime = Runtime(
                    app.mailpipe_config, publish=functools.partial(publish, app),
                    served=served_stages(app))
                log.info("worker serving stages: %s", ", ".join(sorted(app.mailpipe_runtime.pipeline.served)))
    runtime: Runtime = app.mailpipe_runtime
    return runtime
