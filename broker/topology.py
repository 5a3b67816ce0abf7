"""The queue topology every broker kind shares: stage queue names, task names, the exchange.

Owns: ``QUEUE_STAGES`` (every broker queue, in pipeline order), ``queue_name``,
``task_name`` and the kombu declarations of the durable direct exchange and queues.

Must not: know a broker kind or open a connection.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from mailpipe.core.config import STAGES, Config

#: every broker queue, in pipeline order
QUEUE_STAGES: tuple[str, ...] = ("smtp_in",) + STAGES
EXCHANGE = "mailpipe"


def queue_name(config: Config, stage: str) -> str:
    return f"{config.queue_prefix}{stage}"


def task_name(stage: str) -> str:
    return f"mailpipe.{stage}"


def kombu_queues(config: Config) -> list[Queue]:
    """One durable queue per stage on the durable direct exchange, routing key = queue name."""
    exchange = Exchange(EXCHANGE, type="direct", durable=True)
    return [Queue(queue_name(config, s), exchange, routing_key=queue_name(config, s), durable=True)
            for s in QUEUE_STAGES]
