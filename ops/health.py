"""Health checks: broker, spool, database, clamd, spamd, listeners, workers; and worker heartbeats.

Owns: one function per check returning a ``CheckResult`` whose ``line()`` is the
one-line reason an operator reads (``clamd: cannot connect to 127.0.0.1:3310``),
``run_checks`` (what ``mailpipe health`` and ``/healthz`` run), ``daemon_up``
(for the metrics gauge) and the worker heartbeat files.

Worker liveness: where the broker has Celery remote control (RabbitMQ, Redis) a
Celery ``ping``; otherwise (the embedded broker) each worker process rewrites
``DATA/run/workers/<host>-<pid>.json`` every few seconds from a thread, and a
worker counts as alive while that file is fresh and, on this host, its PID lives.

Must not: print (the CLI does), fix anything, or put exception text anywhere
but the reason line of a failed check.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mailpipe.core.procs import pid_alive

CHECKS = ("broker", "spool", "database", "clamd", "spamd", "listeners", "workers")
HEARTBEAT_EVERY = 3.0
PING_TIMEOUT = 2.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    reason: str = "ok"

    def line(self) -> str:
        return f"{self.name}: {self.reason}"


def _fail(name: str, reason: str) -> CheckResult:
    return CheckResult(name, False, reason)


def check_broker(config) -> CheckResult:
    from mailpipe.broker import open_broker
    broker = open_broker(config)
    try:
        ok, reason = broker.reachable(PING_TIMEOUT)
    finally:
        broker.close()
    return CheckResult("broker", ok, reason)


def _writable(name: str, directory: Path) -> CheckResult:
    probe = directory / f".health-{os.getpid()}-{time.monotonic_ns()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return _fail(name, f"{directory} not writable ({exc.strerror or type(exc).__name__})")
    return CheckResult(name, True, f"{directory} writable")


def check_spool(config) -> CheckResult:
    return _writable("spool", config.data_dir / "spool" / "tmp")


def check_database(config) -> CheckResult:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError
    engine = create_engine(config.db_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return _fail("database", f"cannot query {engine.url.render_as_string(hide_password=True)} "
                                 f"({type(exc).__name__})")
    finally:
        engine.dispose()
    return CheckResult("database", True, "SELECT 1 ok")


def _ping_daemon(name: str, url: str | None) -> CheckResult | None:
    if url is None:
        return None
    from mailpipe.core.errors import ConfigError, MailpipeError
    from mailpipe.filters.clamd_client import ClamdClient
    from mailpipe.core.endpoint import parse_endpoint
    from mailpipe.filters.spamc import SpamcClient
    try:
        endpoint = parse_endpoint(url)
    except ConfigError:
        return _fail(name, f"bad address {url!r}")
    where = endpoint.path or f"{endpoint.host}:{endpoint.port}"
    client = ClamdClient(url, PING_TIMEOUT) if name == "clamd" else SpamcClient(url, PING_TIMEOUT)
    try:
        ok = client.ping()
    except MailpipeError:
        return _fail(name, f"cannot connect to {where}")
    return CheckResult(name, True, f"PONG from {where}") if ok else _fail(name, f"no PONG from {where}")


def check_clamd(config) -> CheckResult | None:
    return _ping_daemon("clamd", config.antivirus.clamd)


def check_spamd(config) -> CheckResult | None:
    return _ping_daemon("spamd", config.spam.spamd)


def daemon_up(config) -> dict[str, bool]:
    """clamd/spamd -> answers PING, for the configured ones only."""
    found = {}
    for result in (check_clamd(config), check_spamd(config)):
        if result is not None:
            found[result.name] = result.ok
    return found


def listener_ports(config) -> list[tuple[str, str, int]]:
    """(name, host, port) of every listener this configuration runs (TLS-only ones need [tls])."""
    tls = config.tls.cert is not None
    ports = [("smtp", config.ingress.listen, config.ingress.smtp_port)]
    if tls:
        ports += [("submission", config.ingress.listen, config.ingress.submission_port),
                  ("smtps", config.ingress.listen, config.ingress.smtps_port)]
    if config.imap.enabled:
        ports.append(("imap", getattr(config.imap, "listen", config.ingress.listen), config.imap.port))
        if tls:
            ports.append(("imaps", getattr(config.imap, "listen", config.ingress.listen), config.imap.tls_port))
    if config.pop3.enabled:
        ports.append(("pop3", config.pop3.listen, config.pop3.port))
        if tls:
            ports.append(("pop3s", config.pop3.listen, config.pop3.tls_port))
    return ports


def check_listeners(config) -> CheckResult:
    down = []
    for name, host, port in listener_ports(config):
        target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
        try:
            socket.create_connection((target, port), timeout=PING_TIMEOUT).close()
        except OSError:
            down.append(f"{name} {target}:{port}")
    if down:
        return _fail("listeners", "cannot connect to " + ", ".join(down))
    return CheckResult("listeners", True, f"{len(listener_ports(config))} listening")


# -- workers -----------------------------------------------------------------
def heartbeat_dir(config) -> Path:
    return config.data_dir / "run" / "workers"


def write_heartbeat(config, stages: list[str], now: float | None = None) -> Path:
    """Atomically (re)write this process's heartbeat file; return its path."""
    directory = heartbeat_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{socket.gethostname()}-{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "stages": stages,
                               "at": time.time() if now is None else now}))
    os.replace(tmp, path)
    return path


def start_heartbeat(config, stages: list[str]) -> threading.Event:
    """Touch the heartbeat file every few seconds from a daemon thread; set the event to stop."""
    stop = threading.Event()

    def beat() -> None:
        path = None
        while not stop.is_set():
            try:
                path = write_heartbeat(config, stages)
            except OSError:
                pass
            stop.wait(HEARTBEAT_EVERY)
        if path is not None:
            path.unlink(missing_ok=True)
    threading.Thread(target=beat, name="mailpipe-heartbeat", daemon=True).start()
    return stop


def live_workers(config, now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    found = []
    directory = heartbeat_dir(config)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            beat = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        fresh = now - float(beat.get("at", 0)) <= config.metrics.worker_stale_after
        local_dead = beat.get("host") == socket.gethostname() and not pid_alive(int(beat.get("pid", 0)))
        if fresh and not local_dead:
            found.append(beat)
    return found


def check_workers(config) -> CheckResult:
    from mailpipe.broker import QUEUE_STAGES, open_broker
    broker = open_broker(config)
    if broker.remote_control:
        return _ping_workers(config, broker)
    workers = live_workers(config)
    if not workers:
        return _fail("workers", "no live worker (no fresh heartbeat in "
                                f"{heartbeat_dir(config)})")
    served = {s for w in workers for s in w.get("stages", [])}
    missing = [s for s in QUEUE_STAGES if s not in served]
    if missing:
        return _fail("workers", f"no live worker serves {', '.join(missing)}")
    return CheckResult("workers", True, f"{len(workers)} alive")


def _ping_workers(config, broker) -> CheckResult:
    """``celery inspect ping``, then which stage queues the answering workers consume."""
    from mailpipe.workers.app import QUEUE_STAGES, create_app, queue_name
    app = create_app(config, broker)
    try:
        replies = app.control.ping(timeout=1.0)
        queues = (app.control.inspect(timeout=1.0).active_queues() or {}) if replies else {}
    except Exception as exc:                   # broker errors of many kinds
        return _fail("workers", f"celery inspect ping failed ({type(exc).__name__})")
    finally:
        app.close()
    if not replies:
        return _fail("workers", "no worker answered celery inspect ping within 1s")
    consumed = {q.get("name") for node in queues.values() for q in node or []}
    missing = [s for s in QUEUE_STAGES if queue_name(config, s) not in consumed]
    if missing:
        return _fail("workers", f"no live worker serves {', '.join(missing)}")
    return CheckResult("workers", True, f"{len(replies)} answered ping")


_CHECKS = {"broker": check_broker, "spool": check_spool, "database": check_database,
           "clamd": check_clamd, "spamd": check_spamd, "listeners": check_listeners,
           "workers": check_workers}


def run_checks(config, skip: tuple[str, ...] = ()) -> list[CheckResult]:
    """Every check not skipped; a check that does not apply (daemon not configured) is left out."""
    results: list[CheckResult] = []
    for name in CHECKS:
        if name in skip:
            continue
        if name == "workers" and any(r.name == "broker" and not r.ok for r in results):
            results.append(_fail("workers", "not checked: the broker is unreachable"))
            continue
        try:
            result = _CHECKS[name](config)
        except Exception as exc:               # a broken check is a failed check, never a crash
            result = _fail(name, f"check failed ({type(exc).__name__})")
        if result is not None:
            results.append(result)
    return results
