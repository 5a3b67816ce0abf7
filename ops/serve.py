"""``mailpipe serve``: every role of a one-machine install in one command.

The main process runs the SMTP ingress (and the IMAP/POP3 servers) on one
asyncio loop, the scheduler/sweeper, and supervises child processes: worker
processes (one Celery worker serving every stage, so consecutive stages run in
one task) and, with ``[ingress] processes`` above 1, more ingress processes
bound to the same ports (SO_REUSEPORT). A child that dies (even ``kill -9``)
is restarted; on the embedded broker the messages a worker had claimed go
back to their queues first. SIGTERM or Ctrl-C stops
everything cleanly: listeners close, workers finish their current task.

Children die with serve, even after ``kill -9`` of it: each arms
``PR_SET_PDEATHSIG`` at start (``ops/process.py``; the kernel ties it to the
thread that started the child, so children are started from the event loop's
thread only). Each child is recorded in ``DATA/run/children/*.pid``; a serve
that starts finds the records of an earlier serve of the same data directory
and ends those children that still run (``core/procs.py``) before it binds.

Started as root with ``[process] user`` set, serve binds every listener, hands
the data directory to that user and switches to it before it starts any child.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from mailpipe.access.imap.server import ImapService
from mailpipe.access.pop3.server import Pop3Service
from mailpipe.core import eventloop, procs
from mailpipe.core.clock import SystemClock
from mailpipe.core.tls import TlsContexts
from mailpipe.ingress.server import IngressContext, start_ingress
from mailpipe.core import authlimit
from mailpipe.core.authlimit import LoginLimiter
from mailpipe.mailstore.directory import Directory, open_directory
from mailpipe.core import metrics
from mailpipe.ops import metrics_server, process
from mailpipe.core.config import Config
from mailpipe.spool import open_spool
from mailpipe.workers.app import QUEUE_STAGES, create_app, ingress_publishers, publish, queue_name
from mailpipe.workers.embedded_broker import BrokerDir
from mailpipe.workers.scheduler import Scheduler

log = logging.getLogger("mailpipe.serve")


class ChildProcess:
    """One supervised child process (``mailpipe worker`` or an extra ``mailpipe ingress``)."""

    def __init__(self, argv: list[str], index: int, nice: int = 0, role: str = "worker",
                 env: dict[str, str] | None = None) -> None:
        self.argv, self.index, self.nice, self.role = argv, index, nice, role
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.record_dir: Path | None = None      # where its pid record goes (DATA/run/children)

    def start(self) -> None:
        nice = self.nice
        env = {**os.environ, **(self.env or {}), procs.PARENT_ENV: str(os.getpid())}
        self.proc = subprocess.Popen(self.argv, env=env, preexec_fn=(lambda: os.nice(nice)) if nice else None)
        if self.record_dir is not None:
            procs.ChildRecord.of(self.proc.pid, self.argv).write(self.record_path)
        log.info("%s %d started (pid %d)", self.role, self.index, self.proc.pid)

    @property
    def record_path(self) -> Path:
        assert self.record_dir is not None
        return self.record_dir / f"{self.role}-{self.index}.pid"

    @property
    def pid(self) -> int:
        return 0 if self.proc is None else self.proc.pid

    def died(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.record_dir is not None:
            self.record_path.unlink(missing_ok=True)


def role_argv(config_path: str | None, data_dir: Path, *role: str) -> list[str]:
    """A child role's command line. ``-P``: ``-m`` would otherwise put the working directory
    first on the child's ``sys.path``, so an operator's ``dns.py`` or ``celery.py`` there
    would be imported instead of the library (the child imports the installed mailpipe)."""
    argv = [sys.executable, "-P", "-m", "mailpipe.ops"]
    if config_path:
        argv += ["--config", config_path]
    return argv + ["--data-dir", str(data_dir), *role]


def worker_argv(config_path: str | None, data_dir: Path) -> list[str]:
    return role_argv(config_path, data_dir, "worker", "--stages", "all")


def ingress_children(config: Config, config_path: str | None, bound: dict[str, int]) -> list[ChildProcess]:
    """``[ingress] processes - 1`` more ingress processes on the ports this process bound."""
    env = {f"MAILPIPE_INGRESS__{key.upper()}_PORT": str(port) for key, port in bound.items()}
    argv = role_argv(config_path, config.data_dir, "ingress", "--reuse-port")
    return [ChildProcess(argv, i, role="ingress", env=env) for i in range(1, config.ingress.processes)]


class Server:
    def __init__(self, config: Config, config_path: str | None, ids: tuple[int, int] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.ids = ids                              # (uid, gid) to run as once bound; None = stay
        self.stop_event: asyncio.Event | None = None
        self.services: list = []
        self.children: list[ChildProcess] = []     # worker and extra ingress processes

    async def run(self) -> None:
        config = self.config
        self.stop_event = asyncio.Event()
        metrics.use_multiprocess(config.data_dir / "run" / "metrics")   # before any worker starts
        self.metrics_http = metrics_server.start(config, system=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        directory = open_directory(config.db_url)
        limiter = authlimit.from_config(config.auth)      # one per process, shared by SMTP, IMAP, POP3
        spool = open_spool(config)
        app = create_app(config)
        self.publish = functools.partial(publish, app)
        self.tls = TlsContexts(config.tls.cert, config.tls.key)
        ctx = IngressContext(config=config, directory=directory, spool=spool, limiter=limiter,
                             **ingress_publishers(app))
        loop.add_signal_handler(signal.SIGHUP, self.reload, ctx)
        servers = await start_ingress(ctx, self.tls, reuse_port=config.ingress.processes > 1)
        await self.start_access(directory, limiter)
        process.drop_privileges(config, self.ids)
        self.children = [ChildProcess(worker_argv(self.config_path, config.data_dir), i, config.worker.nice)
                         for i in range(config.worker.processes)]
        self.children += ingress_children(config, self.config_path, ctx.bound)
        for child in self.children:
            child.record_dir = children_dir(config)
            child.start()
        scheduler = Scheduler(spool, self.publish, config, SystemClock())
        tasks = [asyncio.create_task(self.schedule(scheduler)), asyncio.create_task(self.supervise())]
        announce(config)
        await self.stop_event.wait()
        log.info("stopping")
        for server in servers:
            server.close()
        for service in self.services:
            with contextlib.suppress(Exception):
                await service.stop()
        for task in tasks:
            task.cancel()
        await loop.run_in_executor(None, self.stop_children)
        ctx.flow.stop()
        ctx.executor.shutdown(wait=True)
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
        log.info("stopped")

    def stop_children(self) -> None:
        for child in self.children:
            child.stop()

    def reload(self, ctx: IngressContext) -> None:
        """SIGHUP: new TLS certificates and rules here, and the same in every child process."""
        ctx.reload()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGHUP)
        log.info("reloaded (SIGHUP)")

    async def start_access(self, directory: Directory, limiter: LoginLimiter) -> None:
        """Start the IMAP and POP3 services that are enabled."""
        for enabled, service_cls in ((self.config.imap.enabled, ImapService),
                                     (self.config.pop3.enabled, Pop3Service)):
            if enabled:
                service = service_cls(self.config, directory, self.tls, limiter=limiter)
                await service.start()
                self.services.append(service)

    async def schedule(self, scheduler: Scheduler) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, scheduler.tick)
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(self.config.pipeline.sweep_interval)

    async def supervise(self) -> None:
        broker = BrokerDir(self.config.data_dir / "broker") if self.config.embedded_broker else None
        while True:
            await asyncio.sleep(0.5)
            for child in self.children:
                code = child.died()
                if code is None:
                    continue
                log.error("%s %d (pid %d) exited with %s; restarting", child.role, child.index,
                          child.pid, code)
                if broker is not None and child.role == "worker":
                    for stage in QUEUE_STAGES:
                        broker.recover_dead(queue_name(self.config, stage))
                child.restarts += 1
                await asyncio.sleep(min(5.0, 0.2 * child.restarts))
                child.start()


def announce(config: Config) -> None:
    for name, value in (("antivirus", config.antivirus.clamd), ("spam", config.spam.spamd),
                        ("rules", config.rules.file)):
        if name in config.pipeline.filters and value is None:
            log.warning("%s filter not configured: messages pass unscanned (set %s to enable)", name,
                        {"antivirus": "[antivirus] clamd", "spam": "[spam] spamd", "rules": "[rules] file"}[name])
    broker = "embedded (spool://)" if config.embedded_broker else config.broker_url.split("@")[-1]
    log.info("mailpipe ready: data=%s, broker=%s, smtp=%s:%d, event loop=%s", config.data_dir, broker,
             config.ingress.listen, config.ingress.smtp_port, eventloop.chosen(config.event_loop))


def children_dir(config: Config) -> Path:
    return config.data_dir / "run" / "children"


def end_stale_children(config: Config) -> None:
    """End what an earlier serve of this data directory left running (e.g. after its kill -9)."""
    for pid in procs.end_stale(children_dir(config)):
        log.warning("ended pid %d, a child left running by an earlier serve of %s", pid, config.data_dir)


def serve(config: Config, config_path: str | None, ids: tuple[int, int] | None = None) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    end_stale_children(config)
    eventloop.run(Server(config, config_path, ids).run(), config.event_loop)
