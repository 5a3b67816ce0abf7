"""The embedded broker (``spool://``, the default): queues are folders under ``DATA/broker``.

Publishing writes the task message straight into the folder in the form the kombu
transport of ``embedded_transport.py`` reads (no kombu round trip); depths and the
backlog are folder counts. Recovery: a consumer killed with ``kill -9`` leaves its
claimed files in ``inflight/``; every consumer returns those of dead processes every
few seconds, and ``recover_dead_consumers`` does it at once (``mailpipe serve``
calls it before restarting a dead worker). No remote control (no pidbox): worker
liveness comes from heartbeat files (``ops/health.py``).

Must not: be used across hosts (it is a local directory).
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

from mailpipe.broker.base import Broker, QueueDepth
from mailpipe.broker.embedded_transport import BrokerDir, register
from mailpipe.broker.message import origin, task_argument, task_message
from mailpipe.broker.topology import all_stages, queue_name, task_name
from mailpipe.core.config import Config
from mailpipe.core.errors import BrokerUnavailable


class EmbeddedBroker(Broker):
    kind = "embedded"
    recovery = ("claimed messages of a dead consumer go back to their queue, marked redelivered, "
                "within a few seconds (or at once when serve restarts the worker)")
    remote_control = False

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        register()                                # spool:// for Celery and kombu
        self.data_dir = str(config.data_dir.resolve())
        self.root = Path(self.data_dir) / "broker"
        self._dir: BrokerDir | None = None
        self.origin = origin()

    @property
    def dir(self) -> BrokerDir:
        """The folders, created on first use (a config check must not create a data directory)."""
        if self._dir is None:
            self._dir = BrokerDir(self.root)
        return self._dir

    def payload(self, stage: str, queue_ids: Sequence[str], redelivered: bool) -> bytes:
        """The message file: kombu's virtual-transport envelope around Celery's task message."""
        task_id, headers, body = task_message(task_name(stage), task_argument(list(queue_ids)), redelivered,
                                              self.origin)
        properties = {"correlation_id": task_id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                      "delivery_info": {"exchange": "", "routing_key": queue_name(self.config, stage)},
                      "delivery_tag": str(uuid.uuid4())}
        message = {"body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
                   "content-type": "application/json", "headers": headers, "properties": properties}
        return json.dumps(message).encode()

    def publish(self, stage: str, queue_ids: Sequence[str], redelivered: bool = False) -> None:
        try:
            self.dir.put(queue_name(self.config, stage), self.payload(stage, queue_ids, redelivered))
        except OSError as exc:
            raise BrokerUnavailable(f"publish to {stage} failed: {exc.strerror or exc}") from None

    def depths(self) -> list[QueueDepth]:
        names = [(s, queue_name(self.config, s)) for s in all_stages(self.config)]
        try:
            return [QueueDepth(s, q, self.dir.size(q), unacked=self.dir.inflight_count(q)) for s, q in names]
        except OSError:                       # the broker folder is unusable: depths unknown
            return [QueueDepth(s, q, None) for s, q in names]

    def backlog_probe(self, stage: str = "smtp_in") -> "FolderProbe":
        return FolderProbe(self, queue_name(self.config, stage))

    def reachable(self, timeout: float) -> tuple[bool, str]:
        tmp = self.root / "tmp"
        probe = tmp / f".health-{os.getpid()}-{time.monotonic_ns()}"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            return False, f"{tmp} not writable ({exc.strerror or type(exc).__name__})"
        return True, f"{tmp} writable"

    def celery_options(self) -> dict[str, Any]:
        return {"broker_transport_options": {"data_dir": self.data_dir},
                "worker_enable_remote_control": False,    # no pidbox on a folder transport
                "broker_heartbeat": 0}

    def worker_argv(self) -> list[str]:
        return ["--without-heartbeat"]

    def describe(self) -> str:
        return "embedded (spool://)"

    def recover_dead_consumers(self) -> int:
        return sum(self.dir.recover_dead(queue_name(self.config, s)) for s in all_stages(self.config))


class FolderProbe:
    """The ready folder's entry count (``ingress.flow``); 0 before anything was published."""

    def __init__(self, broker: EmbeddedBroker, queue: str) -> None:
        self.broker, self.queue = broker, queue

    def __call__(self) -> int | None:
        try:
            return self.broker.dir.size(self.queue)
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        pass
