"""Run one Celery worker process on a set of stages: what ``mailpipe worker`` and ``mailpipe serve`` start.

Celery runs with ``--quiet`` (no start banner: mailpipe logs its own ready line).

Mail hosts: the stage ``local`` means this host's local stage, ``local`` for the
default mail host or ``local.<host>`` with ``[cluster] mail_host`` (``--mail-host``).

Pool: threads (the stages wait on disks, clamd, spamd and remote servers;
billiard's prefork pool can deadlock on a non-AMQP transport when a child dies).
"""

from __future__ import annotations

import logging
import signal
import socket

from celery.signals import worker_ready

from mailpipe.broker import QUEUE_STAGES, open_broker, queue_name
from mailpipe.broker.topology import LOCAL, local_stage
from mailpipe.core.config import Config
from mailpipe.workers.app import create_app

log = logging.getLogger("mailpipe.worker")


def parse_stages(text: str) -> list[str]:
    if text in ("all", "*"):
        return list(QUEUE_STAGES)
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in QUEUE_STAGES]
    if unknown or not stages:
        raise ValueError(f"unknown stage(s): {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(QUEUE_STAGES)} or 'all'")
    return stages


def with_mail_host(config: Config, mail_host: str | None) -> Config:
    """The config of a worker for that mail host (``--mail-host``); unchanged for None."""
    if mail_host is None:
        return config
    cluster = config.cluster.model_validate({**config.cluster.model_dump(), "mail_host": mail_host})
    return config.model_copy(update={"cluster": cluster})


def host_stages(config: Config, stages: list[str]) -> list[str]:
    """``local`` replaced by this mail host's local stage (``local.<host>`` with ``[cluster] mail_host``)."""
    return [local_stage(config.cluster.mail_host) if s == LOCAL else s for s in stages]


def run_worker(config: Config, stages: list[str], *, concurrency: int | None = None,
               prefetch: int | None = None, name: str | None = None) -> None:
    if prefetch:
        config = config.model_copy(update={"worker": config.worker.model_copy(update={"prefetch": prefetch})})
    stages = host_stages(config, stages)
    broker = open_broker(config)
    app = create_app(config, broker)
    queues = ",".join(queue_name(config, s) for s in stages)
    node = name or f"mailpipe-{'+'.join(stages) if len(stages) < 4 else 'all'}-{socket.gethostname()}"
    argv = ["--quiet", "worker", "-Q", queues, "-P", "threads", "-c", str(concurrency or config.worker.concurrency),
            "-n", f"{node}@%h", "--without-mingle", "--without-gossip", "-l", config.log_level,
            *broker.worker_argv()]
    from mailpipe.ops import health, metrics_server  # noqa: PLC0415 (the roof, started last)
    health.start_heartbeat(config, stages)         # liveness for `mailpipe health` (embedded broker)
    metrics_server.role_started(config, "worker")  # own /metrics unless `serve` collects
    worker_ready.connect(lambda **_: _reload_rules_on_sighup(app), weak=False)
    app.worker_main(argv)


def _reload_rules_on_sighup(app) -> None:
    """SIGHUP re-reads the rules file now (Celery's own SIGHUP restart is replaced)."""
    def reload(signum, frame) -> None:
        runtime = app.mailpipe_runtime
        rules = runtime.filters.get("rules") if runtime is not None else None
        if rules is not None:
            rules.reload()
            log.info("rules reloaded (SIGHUP)")
    signal.signal(signal.SIGHUP, reload)
