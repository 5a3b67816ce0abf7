"""The queue topology every broker kind shares: stage queue names, task names, the exchange.

Owns: ``QUEUE_STAGES`` (every broker queue, in pipeline order), ``queue_name``,
``task_name``, the per-mail-host local stages (``local_stage``, ``stages_of``) and
the kombu declarations of the durable direct exchange and queues.

Mail hosts: a user's mailbox lives on one mail host (the directory says which;
None = the default one). Its local delivery runs in the stage ``local`` for the
default mail host and ``local.<host>`` for the others, each on its own queue of
that name, so one host's queue can wait while the others flow.

Must not: know a broker kind or open a connection (``queue_arguments`` come from
the Broker, e.g. ``x-queue-type`` on RabbitMQ).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from kombu import Exchange, Queue

from mailpipe.core.config import STAGES, Config

#: every broker queue of the default mail host, in pipeline order
QUEUE_STAGES: tuple[str, ...] = ("smtp_in",) + STAGES
EXCHANGE = "mailpipe"
LOCAL = "local"


def queue_name(config: Config, stage: str) -> str:
    return f"{config.queue_prefix}{stage}"


def task_name(stage: str) -> str:
    return f"mailpipe.{stage}"


def local_stage(mail_host: str | None) -> str:
    """The local delivery stage (and queue) of a mail host: ``local`` or ``local.<host>``."""
    return LOCAL if mail_host is None else f"{LOCAL}.{mail_host}"


def mail_host_of(stage: str) -> str | None:
    """The mail host a local stage delivers for (None: the default one)."""
    return stage.partition(".")[2] or None


def base_stage(stage: str) -> str:
    """``local.mh1`` -> ``local``; every other stage is its own base."""
    return stage.partition(".")[0]


def all_stages(config: Config) -> list[str]:
    """Every stage queue: the pipeline's, then each configured mail host's local queue."""
    extra = [local_stage(h) for h in config.cluster.mail_hosts]
    return list(QUEUE_STAGES) + [s for s in extra if s not in QUEUE_STAGES]


def kombu_queue(config: Config, stage: str, arguments: Mapping[str, Any] | None = None) -> Queue:
    """One durable queue on the durable direct exchange, routing key = queue name."""
    exchange = Exchange(EXCHANGE, type="direct", durable=True)
    name = queue_name(config, stage)
    return Queue(name, exchange, routing_key=name, durable=True, queue_arguments=dict(arguments or {}) or None)


def kombu_queues(config: Config, arguments: Mapping[str, Any] | None = None,
                 stages: Iterable[str] | None = None) -> list[Queue]:
    """The queues of ``stages`` (default: every stage queue, ``all_stages``)."""
    return [kombu_queue(config, s, arguments) for s in (all_stages(config) if stages is None else stages)]
