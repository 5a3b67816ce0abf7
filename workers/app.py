"""The Celery application: reliability settings and one thin task per stage, over one Broker.

Owns: ``create_app(config)``, the publish helpers used by the ingress, the
scheduler and the stages themselves, and the re-exported queue and task names
(``broker.topology`` defines them).

Must not: contain stage logic (``workers/pipeline.py`` and ``workers/stages``),
read configuration on its own (it is passed in), or look at the broker's kind
(``broker.open_broker`` chose the implementation; its ``celery_options`` say what
differs).

Reliability: late acks, ``reject_on_worker_lost``, prefetch 1 per thread,
persistent messages, confirmed publishes; no result backend.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery

from mailpipe.broker import Broker, open_broker
from mailpipe.broker.topology import QUEUE_STAGES, all_stages, kombu_queues, local_stage, queue_name, task_name
from mailpipe.core import metrics
from mailpipe.core.config import Config

__all__ = ["QUEUE_STAGES", "celery_settings", "create_app", "ingress_publishers", "publish", "publish_many", "queue_name",
           "task_name"]


def create_app(config: Config, broker: Broker | None = None) -> Celery:
    broker = broker or open_broker(config)
    app = Celery("mailpipe", broker=config.broker_url, set_as_current=False)
    app.conf.update(celery_settings(config, broker))
    for stage in app_stages(config):
        _register_task(app, stage)
    app.mailpipe_config = config
    app.mailpipe_runtime = None
    app.mailpipe_broker = broker
    return app


def app_stages(config: Config) -> list[str]:
    """Every stage with a task here: the pipeline's, each configured mail host's local stage and
    this process's own (``[cluster] mail_host``)."""
    stages = all_stages(config)
    own = local_stage(config.cluster.mail_host)
    return stages + [own] if own not in stages else stages


def celery_settings(config: Config, broker: Broker) -> dict[str, Any]:
    """Celery's settings: what every broker kind shares, with the kind's ``celery_options`` over them."""
    return {**_common_settings(config, broker), **broker.celery_options()}


def _common_settings(config: Config, broker: Broker) -> dict[str, Any]:
    return dict(
        task_queues=kombu_queues(config, broker.queue_arguments(), app_stages(config)),
        task_default_queue=queue_name(config, "smtp_in"),
        task_routes={task_name(s): {"queue": queue_name(config, s), "routing_key": queue_name(config, s)}
                     for s in app_stages(config)},
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
        broker_connection_retry_on_startup=True,
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


def publish_many(app: Celery, stage: str, queue_ids: list[str], redelivered: bool = False) -> None:
    """Put several queue IDs on a stage queue as one task message (``ingress.committer``)."""
    broker: Broker = app.mailpipe_broker
    broker.publish(stage, queue_ids, redelivered)
    metrics.published(queue_name(app.mailpipe_config, stage), len(queue_ids))


def ingress_publishers(app: Celery) -> dict[str, Any]:
    """``publish``, ``publish_many`` (group commit) and the smtp_in ``backlog`` probe (flow
    control) for ``ingress.server.IngressContext``."""
    broker: Broker = app.mailpipe_broker
    return {"publish": functools.partial(publish, app), "publish_many": functools.partial(publish_many, app),
            "backlog": broker.backlog_probe("smtp_in")}
