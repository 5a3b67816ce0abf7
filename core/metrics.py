"""Prometheus metrics: the counters every role increments and the endpoint that exposes them.

Owns: the metric names (one table below), the one-line recording calls used by
the ingress, the pipeline and the stages, the scrape-time gauges (queue
depths, spool, oldest deferred, clamd/spamd up) and the HTTP endpoint serving
``/metrics`` and ``/healthz``.

Several processes: ``mailpipe serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` (via
``use_multiprocess``) before any metric exists and before it starts its worker
processes, which inherit it; its endpoint merges every process's files with
prometheus-client's ``MultiProcessCollector``. A role started on its own
(``mailpipe worker|ingress|scheduler|imap|pop3``) without that variable serves
its own counters on ``[metrics] port`` (``role_started``).

Metric objects are process-wide by nature (prometheus-client keeps them per
process); they are built lazily on first use so that the multiprocess choice
made at start is respected. Recording never raises into the caller.

Must not: decide anything about messages, or block a caller on I/O (the
scrape-time gauges are computed only when scraped).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values

log = logging.getLogger("mailpipe.metrics")

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FILTER_STAGES = ("antivirus", "spam", "rules")


class _Metrics:
    """Every counter and histogram mailpipe records (names are the public contract)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        self.connections = Counter("mailpipe_ingress_connections", "SMTP connections opened", registry=r)
        self.accepted = Counter("mailpipe_ingress_accepted", "Messages accepted (250 queued as)", registry=r)
        self.rejected = Counter("mailpipe_ingress_rejected", "Commands or messages rejected at ingress",
                                ["reason"], registry=r)
        self.processed = Counter("mailpipe_stage_processed", "Messages a stage finished", ["stage"], registry=r)
        self.latency = Histogram("mailpipe_stage_duration_seconds", "Time a stage took per message",
                                 ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.verdicts = Counter("mailpipe_verdicts", "Filter verdicts", ["filter", "action"], registry=r)
        self.delivered = Counter("mailpipe_delivered", "Recipient deliveries", ["route"], registry=r)
        self.deferred = Counter("mailpipe_deferred", "Messages deferred", ["stage"], registry=r)
        self.bounced = Counter("mailpipe_bounced", "Delivery status notifications sent", registry=r)
        self.published = Counter("mailpipe_queue_published", "Queue IDs published to a stage queue",
                                 ["queue"], registry=r)
        self._children: dict[tuple, object] = {}

    def child(self, metric, *values: str):
        """``metric.labels(*values)``, cached: label lookup costs more than the increment."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


_lock = threading.Lock()
_metrics: _Metrics | None = None
_registry: CollectorRegistry | None = None


def _get() -> _Metrics:
    global _metrics, _registry
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _registry = None if os.environ.get(ENV_DIR) else CollectorRegistry()
                _metrics = _Metrics(_registry)
    return _metrics


def use_multiprocess(directory: Path) -> None:
    """Make this process and its children write metrics into ``directory`` (emptied first)."""
    global _metrics
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(directory)
    values.ValueClass = values.get_value_class()
    _metrics = None
    _get()                                       # unlabelled counters show 0 from the start


def _safe(record):
    def wrapper(*args, **kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception:                       # metrics must never break mail flow
            log.exception("recording metric %s failed", record.__name__)
    wrapper.__name__ = record.__name__
    wrapper.__doc__ = record.__doc__
    return wrapper


# -- recording calls (one line at each call site) -------------------------
@_safe
def ingress_connection() -> None:
    _get().connections.inc()


@_safe
def ingress_accepted() -> None:
    _get().accepted.inc()


@_safe
def ingress_rejected(reply: str) -> None:
    """Count a rejection; the reason label is the reply's enhanced code (or its basic code)."""
    m = _get()
    m.child(m.rejected, reject_reason(reply)).inc()


@_safe
def stage_done(stage: str, seconds: float, last_event=None) -> None:
    """A stage finished one message; ``last_event`` (its trace event) carries a filter's verdict."""
    m = _get()
    m.child(m.processed, stage).inc()
    m.child(m.latency, stage).observe(seconds)
    if stage in FILTER_STAGES and last_event is not None and last_event.stage == stage:
        m.child(m.verdicts, stage, last_event.event).inc()


@_safe
def delivered(route: str, count: int = 1) -> None:
    if count:
        m = _get()
        m.child(m.delivered, route).inc(count)


@_safe
def deferred(stage: str) -> None:
    m = _get()
    m.child(m.deferred, stage).inc()


@_safe
def bounced() -> None:
    _get().bounced.inc()


@_safe
def published(queue: str, count: int = 1) -> None:
    m = _get()
    m.child(m.published, queue).inc(count)


def reject_reason(reply: str) -> str:
    """``"550 5.1.1 no such user"`` -> ``"5.1.1"``; ``"421 bye"`` -> ``"421"`` (bounded label values)."""
    parts = reply.split()
    if len(parts) > 1 and parts[1].count(".") == 2 and parts[1].replace(".", "").isdigit():
        return parts[1]
    return parts[0][:3] if parts else "unknown"
