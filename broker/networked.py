"""What the brokers reached over a socket (RabbitMQ, Redis) share, through kombu.

Publishing: one kombu producer per thread on its own connection, the stage queues
declared once per connection (a mail host's ``local.<host>`` queue that is not in
``[cluster] mail_hosts`` is declared before its first publish, so a direct-exchange
publish never goes to no queue), the hand-built task message of ``message.py``
(confirmed on AMQP, a synchronous LPUSH on Redis). A publish that fails drops that
thread's connection and is tried once more on a new one (a connection left over
from before a broker restart fails first); a second failure is
``BrokerUnavailable``. A repeated publish can at worst give a duplicate task
message, which every stage ignores (idempotent on the queue ID).

Depths and the backlog: a kept connection asks the broker (``_count``, per kind);
a connection failure makes the probe answer None and not retry for
``ConnectionProbe.RETRY_AFTER`` seconds.

Must not: switch on the broker kind (subclasses override ``_count`` and the
options).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Sequence

from kombu import Connection, Producer

from mailpipe.broker.base import Broker, QueueDepth
from mailpipe.broker.message import origin, task_argument, task_message
from mailpipe.broker.topology import EXCHANGE, all_stages, kombu_queue, kombu_queues, queue_name, task_name
from mailpipe.core.config import Config
from mailpipe.core.errors import BrokerUnavailable

CONNECT_TIMEOUT = 3.0
PUBLISH_ATTEMPTS = 2


class NotDeclared(Exception):
    """The queue does not exist on the broker yet: nothing waits in it."""


class NetworkedBroker(Broker):
    """A broker behind a kombu connection URL; subclasses give ``_count`` and the options."""

    remote_control = True

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.url = config.broker_url
        self.origin = origin()
        self._local = threading.local()
        self._open: list[Connection] = []
        self._lock = threading.Lock()

    # -- kind-specific ------------------------------------------------------
    def transport_options(self) -> dict[str, Any]:
        return {}

    def _count(self, channel: Any, queue: str) -> tuple[int, int | None]:
        """(ready messages, consumers) of one queue; raise ``NotDeclared`` if it does not exist."""
        raise NotImplementedError

    # -- connections --------------------------------------------------------
    def connect(self) -> Connection:
        return Connection(self.url, connect_timeout=CONNECT_TIMEOUT, transport_options=self.transport_options())

    def _producer(self) -> Producer:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            conn = self.connect()
            with self._lock:
                self._open.append(conn)
            self._local.conn = conn
            conn.ensure_connection(max_retries=1, interval_start=0.5)
            channel = conn.channel()
            for queue in kombu_queues(self.config, self.queue_arguments()):
                queue(channel).declare()
            self._local.declared = set(all_stages(self.config))
            producer = self._local.producer = Producer(channel)
        return producer

    def _declared_producer(self, stage: str) -> Producer:
        producer = self._producer()
        if stage not in self._local.declared:
            kombu_queue(self.config, stage, self.queue_arguments())(producer.channel).declare()
            self._local.declared.add(stage)
        return producer

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = self._local.producer = None
        if conn is not None:
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        with contextlib.suppress(Exception):          # closing a broken connection
            conn.close()

    # -- the interface ------------------------------------------------------
    def publish(self, stage: str, queue_ids: Sequence[str], redelivered: bool = False) -> None:
        task_id, headers, body = task_message(task_name(stage), task_argument(list(queue_ids)), redelivered,
                                              self.origin)
        queue = queue_name(self.config, stage)
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                self._declared_producer(stage).publish(body, exchange=EXCHANGE, routing_key=queue, headers=headers,
                                         content_type="application/json", content_encoding="utf-8",
                                         delivery_mode=2, correlation_id=task_id, retry=False)
                return
            except Exception as exc:      # amqp/kombu/redis/socket errors all mean "not confirmed"
                self._drop()
                if attempt == PUBLISH_ATTEMPTS:
                    raise BrokerUnavailable(f"publish to {stage} failed: {type(exc).__name__}: {exc}") from None

    def depths(self) -> list[QueueDepth]:
        result = []
        try:
            with self.connect() as conn:
                channel = conn.channel()
                for stage in all_stages(self.config):
                    name = queue_name(self.config, stage)
                    try:
                        depth, consumers = self._count(channel, name)
                    except NotDeclared:                # nothing waits in it
                        channel = conn.channel()
                        depth, consumers = 0, 0
                    result.append(QueueDepth(stage, name, depth, consumers=consumers))
        except Exception:                              # unreachable: every depth unknown
            return [QueueDepth(s, queue_name(self.config, s), None) for s in all_stages(self.config)]
        return result

    def backlog_probe(self, stage: str = "smtp_in") -> "ConnectionProbe":
        return ConnectionProbe(self, queue_name(self.config, stage))

    def reachable(self, timeout: float) -> tuple[bool, str]:
        where = self.describe()
        try:
            with Connection(self.url, connect_timeout=timeout, transport_options=self.transport_options()) as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
        except Exception as exc:                   # kombu raises many types: all mean unreachable
            return False, f"cannot connect to {where} ({type(exc).__name__})"
        return True, f"connected to {where}"

    def describe(self) -> str:
        return self.url.rpartition("@")[2]

    def celery_options(self) -> dict[str, Any]:
        return {"broker_transport_options": self.transport_options(),
                "worker_enable_remote_control": True,
                "broker_heartbeat": 60}

    def close(self) -> None:
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()


class ConnectionProbe:
    """Ready messages on one queue over one kept connection (``ingress.flow``).

    A queue not declared yet counts 0 (a new channel, same connection); after a
    connection failure it answers None without trying again for ``RETRY_AFTER`` s.
    """

    RETRY_AFTER = 5.0

    def __init__(self, broker: NetworkedBroker, queue: str) -> None:
        self.broker, self.queue = broker, queue
        self._conn: Connection | None = None
        self._channel: Any = None
        self._retry_at = 0.0

    def __call__(self) -> int | None:
        if self._channel is None and time.monotonic() < self._retry_at:
            return None
        try:
            if self._conn is None or self._channel is None:
                self._conn = self.broker.connect()
                self._channel = self._conn.channel()
            return self.broker._count(self._channel, self.queue)[0]
        except NotDeclared:
            if self._conn is not None and self._conn.connected:
                self._channel = self._conn.channel()
                return 0
        except Exception:                   # the broker went away: unknown for a while
            pass
        self.close()
        self._retry_at = time.monotonic() + self.RETRY_AFTER
        return None

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):      # closing a broken connection
                conn.release()
