"""The HTTP endpoint beside every role: ``GET /metrics`` (Prometheus text) and ``GET /healthz``.

Owns: which collectors a process exposes (its own counters, or every process's
files in multiprocess mode, plus the scrape-time system gauges where asked)
and a small threaded HTTP server on ``[metrics] listen``:``[metrics] port``.

``/healthz`` answers 200 ``ok`` or 503 with one line per failed check (the
same checks as ``mailpipe health``), never exception text.

Must not: record metrics (``core.metrics``) or implement checks (``ops.health``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from mailpipe.core import metrics

log = logging.getLogger("mailpipe.metrics")


class SystemCollector:
    """Queue depths, spool counts and size, oldest deferred age, clamd/spamd availability."""

    def __init__(self, config) -> None:
        self.config = config

    def collect(self):
        from mailpipe.ops.health import daemon_up
        from mailpipe.ops.queues import stage_depths
        from mailpipe.ops.watch import spool_summary
        from mailpipe.spool import open_spool
        depth = GaugeMetricFamily("mailpipe_queue_depth", "Messages ready in a stage queue", labels=["stage", "queue"])
        unacked = GaugeMetricFamily("mailpipe_queue_unacked", "Messages claimed by a worker", labels=["stage", "queue"])
        consumers = GaugeMetricFamily("mailpipe_queue_consumers", "Consumers of a stage queue", labels=["stage", "queue"])
        for q in stage_depths(self.config):
            for family, value in ((depth, q.depth), (unacked, q.unacked), (consumers, q.consumers)):
                if value is not None:
                    family.add_metric([q.stage, q.queue], value)
        yield from (depth, unacked, consumers)
        summary = spool_summary(open_spool(self.config), time.time())
        states = GaugeMetricFamily("mailpipe_spool_messages", "Spool entries by state", labels=["state"])
        for state, count in summary.counts.items():
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily("mailpipe_spool_bytes", "Bytes of message bodies in the spool",
                                value=summary.bytes)
        yield GaugeMetricFamily("mailpipe_oldest_deferred_age_seconds", "Age of the oldest deferred message",
                                value=summary.oldest_deferred_age)
        up = GaugeMetricFamily("mailpipe_filter_daemon_up", "1 if the daemon answers PING", labels=["daemon"])
        for name, ok in daemon_up(self.config).items():
            up.add_metric([name], 1.0 if ok else 0.0)
        yield up


class Exposition:
    """What one endpoint shows; ``render()`` is called on every scrape."""

    def __init__(self, config, *, system: bool, health_skip: tuple[str, ...] = ()) -> None:
        self.config = config
        self.health_skip = health_skip
        self.registries: list[CollectorRegistry] = []
        multiproc = os.environ.get(metrics.ENV_DIR)
        if multiproc:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=multiproc)
            self.registries.append(merged)
        else:
            metrics._get()
            assert metrics._registry is not None   # set by _get() outside multiprocess mode
            self.registries.append(metrics._registry)
        if system:
            gauges = CollectorRegistry()
            gauges.register(SystemCollector(config))
            self.registries.append(gauges)

    def render(self) -> bytes:
        return b"".join(generate_latest(r) for r in self.registries)

    def health(self) -> tuple[int, bytes]:
        from mailpipe.ops.health import run_checks
        failed = [r for r in run_checks(self.config, skip=self.health_skip) if not r.ok]
        if not failed:
            return 200, b"ok\n"
        return 503, "".join(f"{r.line()}\n" for r in failed).encode()


def _handler(exposition: Exposition):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:             # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    status, body, ctype = 200, exposition.render(), metrics.CONTENT_TYPE
                elif path == "/healthz":
                    status, body = exposition.health()
                    ctype = "text/plain; charset=utf-8"
                else:
                    status, body, ctype = 404, b"not found\n", "text/plain; charset=utf-8"
            except Exception:
                log.exception("serving %s failed", path)
                status, body, ctype = 500, b"internal error\n", "text/plain; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:   # noqa: A002 (http.server's signature)
            return None
    return Handler


def start(config, *, system: bool, health_skip: tuple[str, ...] = ()) -> ThreadingHTTPServer | None:
    """Serve in a daemon thread; None (and a warning) if disabled or the port cannot be bound."""
    if not config.metrics.enabled:
        return None
    exposition = Exposition(config, system=system, health_skip=health_skip)
    try:
        server = ThreadingHTTPServer((config.metrics.listen, config.metrics.port), _handler(exposition))
    except OSError as exc:
        log.warning("metrics endpoint not started: cannot bind %s:%d (%s)", config.metrics.listen,
                    config.metrics.port, exc.strerror or exc)
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    log.info("metrics: http://%s:%d/metrics and /healthz", config.metrics.listen, server.server_address[1])
    return server


def role_started(config, role: str) -> ThreadingHTTPServer | None:
    """A standalone role serves its own counters, unless a supervisor (serve) collects them."""
    metrics._get()
    if os.environ.get(metrics.ENV_DIR):
        return None
    return start(config, system=role in ("scheduler", "serve"), health_skip=("listeners", "workers"))
