"""The Celery application: queue topology, reliability settings and one thin task per stage.

Owns: ``create_app(config)``, queue names, task names and the publish helper
used by the ingress, the scheduler and the stages themselves.

Must not: contain stage logic (``workers/pipeline.py`` and ``workers/stages``)
or read configuration on its own (it is passed in).

Reliability: late acks, ``reject_on_worker_lost``, prefetch 1 per thread,
persistent messages, publisher confirms on AMQP; no result backend.
"""

from __future__ import annotations

import functools

from celery import Celery
from kombu import Exchange, Queue

from mailpipe.core import metrics
from mailpipe.core.config import STAGES, Config
from mailpipe.workers import embedded_broker
from mailpipe.workers.publisher import AmqpPublisher, EmbeddedPublisher, celery_publish

#: every broker queue, in pipeline order
QUEUE_STAGES = ("smtp_in",) + STAGES


def queue_name(config: Config, stage: str) -> str:
    return f"{config.queue_prefix}{stage}"


def task_name(stage: str) -> str:
    return f"mailpipe.{stage}"


def create_app(config: Config) -> Celery:
    embedded_broker.register()
    app = Celery("mailpipe", broker=config.broker_url, set_as_current=False)
    app.conf.update(_settings(config))
    for stage in QUEUE_STAGES:
        _register_task(app, stage)
    app.mailpipe_config = config
    app.mailpipe_runtime = None
    app.mailpipe_publisher = None
    return app


def _settings(config: Config) -> dict:
    exchange = Exchange("mailpipe", type="direct", durable=True)
    queues = [Queue(queue_name(config, s), exchange, routing_key=queue_name(config, s), durable=True)
              for s in QUEUE_STAGES]
    transport_options: dict = {"data_dir": str(config.data_dir.resolve())}
    if config.broker_url.startswith(("amqp", "pyamqp")):
        transport_options = {"confirm_publish": True}
    elif config.broker_url.startswith(("redis", "rediss")):
        transport_options = {"visibility_timeout": max(600, int(config.pipeline.sweep_after) * 2)}
    return dict(
        task_queues=queues,
        task_default_queue=queue_name(config, "smtp_in"),
        task_routes={task_name(s): {"queue": queue_name(config, s), "routing_key": queue_name(config, s)}
                     for s in QUEUE_STAGES},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_serializer="json",
        accept_content=["json"],
        task_default_delivery_mode="persistent",
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
                                   "interval_max": 0.5},
        worker_prefetch_multiplier=config.worker.prefetch,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_enable_remote_control=not config.embedded_broker,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        broker_heartbeat=0 if config.embedded_broker else 60,
        result_backend=None,
    )


def _register_task(app: Celery, stage: str) -> None:
    def run_stage(self, queue_id: str | list[str], redelivered: bool = False) -> None:
        from mailpipe.workers.runtime import runtime_for
        redelivered = redelivered or bool((self.request.delivery_info or {}).get("redelivered"))
        pipeline = runtime_for(self.app).pipeline
        if isinstance(queue_id, str):
            pipeline.run(queue_id, stage, redelivered)
        elif redelivered:        # a batch whose worker died: one task per ID, so a poison message goes alone
            for one in queue_id:
                publish(self.app, stage, one, redelivered=True)
        else:
            pipeline.run_batch(queue_id, stage)

    app.task(name=task_name(stage), bind=True, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)(run_stage)


def publish(app: Celery, stage: str, queue_id: str, redelivered: bool = False) -> None:
    """Put a queue ID on a stage queue; return only once the broker has it (confirmed).

    ``redelivered`` marks a republish of a message that may already have been
    worked on (the sweeper), so stages check what was already done.
    """
    publish_many(app, stage, [queue_id], redelivered)


def ingress_publishers(app: Celery) -> dict:
    """``publish``, ``publish_many`` (group commit) and the smtp_in ``backlog`` probe (flow
    control) for ``ingress.server.IngressContext``."""
    from mailpipe.ops.queues import BacklogProbe
    return {"publish": functools.partial(publish, app), "publish_many": functools.partial(publish_many, app),
            "backlog": BacklogProbe(app.mailpipe_config)}


def publish_many(app: Celery, stage: str, queue_ids: list[str], redelivered: bool = False) -> None:
    """Put several queue IDs on a stage queue as one task message (``ingress.committer``)."""
    _send(app, stage, queue_ids[0] if len(queue_ids) == 1 else list(queue_ids), redelivered)
    metrics.published(queue_name(app.mailpipe_config, stage), len(queue_ids))


def _send(app: Celery, stage: str, arg: str | list[str], redelivered: bool) -> None:
    config: Config = app.mailpipe_config
    if config.embedded_broker:
        if app.mailpipe_publisher is None:
            app.mailpipe_publisher = EmbeddedPublisher(str(config.data_dir.resolve()),
                                                       lambda s: queue_name(config, s), task_name)
        app.mailpipe_publisher(stage, arg, redelivered)
    elif config.broker_url.startswith(("amqp", "pyamqp")):
        if app.mailpipe_publisher is None:
            app.mailpipe_publisher = AmqpPublisher(app, lambda s: queue_name(config, s), task_name)
        app.mailpipe_publisher(stage, arg, redelivered)
    else:
        celery_publish(app, stage, arg, redelivered)
