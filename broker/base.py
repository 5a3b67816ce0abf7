"""The Broker interface: what mailpipe asks of a message broker, whatever its kind.

A broker carries queue IDs between stages (never message bodies: the spool is the
truth). Every kind implements:

- ``publish(stage, queue_ids, redelivered)``: one task message carrying the IDs on the
  stage's queue; returns only once the broker has it (confirmed), else raises
  ``BrokerUnavailable`` (the ingress answers 451 and keeps nothing).
- ``depths()``: ready messages, unacknowledged ones and consumers per stage queue
  (``None`` where the kind cannot tell); ``backlog_probe(stage)``: the ready count of
  one queue, cheap enough to poll (``ingress.flow``).
- recovery: ``recover_dead_consumers()`` returns what dead consumers had claimed,
  where the broker does not do it itself; ``recovery`` says in one line what happens
  to unacknowledged messages and on reconnect.
- Celery: ``celery_options()`` (settings of this kind, merged over the common ones
  by ``workers.app``), ``worker_argv()`` and ``remote_control`` (Celery's
  ``inspect ping`` works).
- ``reachable()``: (ok, one-line reason) for ``mailpipe health``; ``describe()``:
  where it is, for the start-up log line, without credentials.

Error tree: every library error of a publish becomes ``core.errors.BrokerUnavailable``;
``depths``, probes and ``reachable`` never raise for an unreachable broker (they answer
``None`` or ``(False, reason)``).

Must not: know stages' work, the spool or the CLI; keep message bodies.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Sequence

from mailpipe.core.config import Config


@dataclass
class QueueDepth:
    stage: str
    queue: str
    depth: int | None            #: ready messages (None: broker unreachable)
    unacked: int | None = None   #: claimed by a worker, not yet acknowledged (where the kind can tell)
    consumers: int | None = None


class BacklogProbe(Protocol):
    """Ready messages on one stage queue, read again on each call; None if the broker cannot say."""

    def __call__(self) -> int | None: ...

    def close(self) -> None: ...


class Broker(abc.ABC):
    """One broker kind. Made once per process by ``broker.factory.open_broker(config)``."""

    kind: ClassVar[str]
    recovery: ClassVar[str]          #: what happens to unacknowledged messages and on reconnect
    remote_control: ClassVar[bool]   #: Celery remote control (``inspect ping``) works on this kind

    def __init__(self, config: Config) -> None:
        self.config = config

    @abc.abstractmethod
    def publish(self, stage: str, queue_ids: Sequence[str], redelivered: bool = False) -> None:
        """Put the IDs on the stage's queue as one task message; return once the broker has it."""

    @abc.abstractmethod
    def depths(self) -> list[QueueDepth]:
        """Every stage queue (``topology.all_stages``: pipeline order, then the mail hosts' local queues)."""

    @abc.abstractmethod
    def backlog_probe(self, stage: str = "smtp_in") -> BacklogProbe: ...

    @abc.abstractmethod
    def reachable(self, timeout: float) -> tuple[bool, str]:
        """(ok, reason): the one-line answer of ``mailpipe health``'s broker check."""

    @abc.abstractmethod
    def celery_options(self) -> dict[str, Any]:
        """Celery settings of this kind (transport options, heartbeats, remote control...)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the broker is, for logs (no credentials)."""

    def queue_arguments(self) -> dict[str, Any]:
        """Arguments every stage queue is declared with (RabbitMQ's ``x-queue-type``); none by default."""
        return {}

    def worker_argv(self) -> list[str]:
        """Extra ``celery worker`` arguments of this kind."""
        return []

    def recover_dead_consumers(self) -> int:
        """Return messages claimed by dead consumers to their queues now; how many.

        Brokers with connections do this themselves when a consumer's connection
        closes (RabbitMQ) or its visibility timeout passes (Redis): nothing to do."""
        return 0

    def close(self) -> None:
        """Release connections this object opened (in any thread)."""
