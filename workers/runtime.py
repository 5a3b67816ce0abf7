"""Per-process runtime of a worker: the spool, directory, clock, filters and the pipeline.

Built lazily on first use inside a worker process (so a forked or threaded
worker opens its own database connections), from the config the app was made
with. Tests build a ``Runtime`` directly with their own seams.
"""

from __future__ import annotations

import functools
import logging
import threading

from celery import Celery

from mailpipe.core.clock import Clock, SystemClock
from mailpipe.mailstore.directory import Directory, open_directory
from mailpipe.core.config import Config
from mailpipe.spool import Spool, open_spool

log = logging.getLogger("mailpipe.worker")
_lock = threading.Lock()


class Runtime:
    def __init__(self, config: Config, *, publish, served: frozenset[str], clock: Clock | None = None,
                 directory: Directory | None = None, relay=None) -> None:
        from mailpipe.workers.pipeline import Pipeline
        from mailpipe.workers.stages import filter_stage

        self.config = config
        self.clock = clock or SystemClock()
        self.spool: Spool = open_spool(config)
        self.directory: Directory = directory or open_directory(config.db_url)
        self.publish = publish
        self.filters = filter_stage.build_filters(config)
        self._relay = relay
        self._relay_lock = threading.Lock()
        self.pipeline = Pipeline(self, served)

    @property
    def relay(self):
        """The ``delivery.relay.Relay`` of this process, built on first use (a worker without
        the remote stage never opens a resolver or a connection pool)."""
        if self._relay is None:
            with self._relay_lock:
                if self._relay is None:
                    from mailpipe.delivery.relay import Relay
                    self._relay = Relay.from_config(self.config, clock=self.clock)
        return self._relay

    @relay.setter
    def relay(self, value) -> None:
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
    return app.mailpipe_runtime
