"""Where every message is: broker queue depths per stage and spool counts per state.

Broker depths use each broker's own API: the embedded broker's directories,
or a passive ``queue_declare`` through kombu (RabbitMQ, Redis), which answers
with the message and consumer counts without creating anything.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

from mailpipe.core.config import Config
from mailpipe.spool.model import State
from mailpipe.workers.app import QUEUE_STAGES, queue_name
from mailpipe.workers.embedded_broker import BrokerDir


@dataclass
class QueueDepth:
    stage: str
    queue: str
    depth: int | None            #: ready messages (None: broker unreachable)
    unacked: int | None = None   #: claimed by a worker, not yet acknowledged (embedded broker)
    consumers: int | None = None


def stage_depths(config: Config) -> list[QueueDepth]:
    if config.embedded_broker:
        broker = BrokerDir(config.data_dir / "broker")
        return [QueueDepth(s, queue_name(config, s), broker.size(queue_name(config, s)),
                           unacked=broker.inflight_count(queue_name(config, s))) for s in QUEUE_STAGES]
    return _kombu_depths(config)


def _kombu_depths(config: Config) -> list[QueueDepth]:
    from kombu import Connection
    result = []
    try:
        with Connection(config.broker_url, connect_timeout=3) as conn:
            channel = conn.channel()
            for stage in QUEUE_STAGES:
                name = queue_name(config, stage)
                try:
                    _, depth, consumers = channel.queue_declare(name, passive=True)
                except Exception:          # queue not declared yet: nothing waits in it
                    channel = conn.channel()
                    depth, consumers = 0, 0
                result.append(QueueDepth(stage, name, depth, consumers=consumers))
    except Exception:
        return [QueueDepth(s, queue_name(config, s), None) for s in QUEUE_STAGES]
    return result


class BacklogProbe:
    """Ready broker messages on one stage queue, read again on each call (``ingress.flow``).

    Keeps one broker connection (RabbitMQ, Redis) open between calls; a queue
    not declared yet counts 0 (a new channel, same connection); after a
    connection failure it answers None without trying again for
    ``RETRY_AFTER`` seconds. The embedded broker's count is its directory's.
    """

    RETRY_AFTER = 5.0

    def __init__(self, config: Config, stage: str = "smtp_in") -> None:
        self.config, self.queue = config, queue_name(config, stage)
        self._embedded = BrokerDir(config.data_dir / "broker") if config.embedded_broker else None
        self._conn = self._channel = None
        self._retry_at = 0.0

    def __call__(self) -> int | None:
        if self._embedded is not None:
            try:
                return self._embedded.size(self.queue)
            except FileNotFoundError:      # nothing published yet
                return 0
        if self._channel is None and time.monotonic() < self._retry_at:
            return None
        try:
            if self._channel is None:
                from kombu import Connection
                self._conn = Connection(self.config.broker_url, connect_timeout=3)
                self._channel = self._conn.channel()
            return self._channel.queue_declare(self.queue, passive=True)[1]
        except Exception as exc:
            if self._conn is not None and self._conn.connected and _not_found(exc):
                self._channel = self._conn.channel()
                return 0
            self.close()
            self._retry_at = time.monotonic() + self.RETRY_AFTER
            return None

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):      # closing a broken connection
                conn.release()


def _not_found(exc: Exception) -> bool:
    """The broker's answer to a passive declare of a queue that does not exist (AMQP 404)."""
    return getattr(exc, "code", None) == 404 or getattr(exc, "reply_code", None) == 404


def spool_counts(spool) -> dict[str, int]:
    counts = {state.value: 0 for state in State if state != State.DONE}
    for entry in spool.entries():
        counts[entry.state.value] = counts.get(entry.state.value, 0) + 1
    return counts


def snapshot(config: Config, spool) -> dict:
    return {"time": time.time(),
            "queues": [asdict(d) for d in stage_depths(config)],
            "spool": spool_counts(spool)}
