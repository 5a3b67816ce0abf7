"""Commands that run a role: ``serve`` (everything), ``worker``, ``ingress``, ``scheduler``, ``imap``, ``pop3``."""

from __future__ import annotations

import asyncio
import functools
import signal

import click

from mailpipe.core import eventloop
from mailpipe.ops import datadir, logs, metrics_server, process
from mailpipe.ops.cli import Context, pass_ctx


def _start(ctx: Context, role: str) -> tuple[int, int] | None:
    """Common start of every role: logging, descriptor limit, usable data directory and
    database (one line if not), and the user to switch to once the ports are bound."""
    logs.setup(ctx.config.log_level, role)
    ids = process.target_ids(ctx.config)
    ctx.data_path()
    datadir.check_database(ctx.config.db_url)
    process.warn_if_root(ctx.config)
    process.raise_descriptor_limit()
    return ids


@click.command()
@pass_ctx
def serve(ctx: Context) -> None:
    """Run ingress, stage workers, scheduler, IMAP and POP3 on this machine.

    Started as root with [process] user set, it binds its ports and then runs
    every process as that user. Children die with it; a restarted serve ends
    children an earlier serve of the same data directory left behind.
    """
    from mailpipe.ops.serve import serve as run
    process.check_serve(ctx.config)
    ids = _start(ctx, "mailpipe")
    run(ctx.config, ctx.config_path, ids)


@click.command()
@click.option("--stages", default="all", show_default=True,
              help="Comma-separated stages to serve: smtp_in,antivirus,spam,rules,route,local,remote or 'all'.")
@click.option("--concurrency", "-c", type=int, default=None, help="Threads (default [worker] concurrency).")
@click.option("--prefetch", type=int, default=None, help="Prefetch multiplier (default [worker] prefetch).")
@click.option("--name", default=None, help="Celery node name.")
@click.option("--mail-host", default=None,
              help="Deliver for this mail host: stage local consumes queue local.<host> (default [cluster] mail_host).")
@pass_ctx
def worker(ctx: Context, stages: str, concurrency: int | None, prefetch: int | None, name: str | None,
           mail_host: str | None) -> None:
    """Run one Celery worker on exactly the given stages' queues."""
    from pydantic import ValidationError

    from mailpipe.ops.worker import parse_stages, run_worker, with_mail_host
    try:
        chosen = parse_stages(stages)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--stages") from None
    try:
        config = with_mail_host(ctx.config, mail_host)
    except ValidationError:
        raise click.BadParameter(f"{mail_host!r}: use lower-case letters, digits and '-'",
                                 param_hint="--mail-host") from None
    process.drop_privileges(config, _start(ctx, "mailpipe-worker"))
    run_worker(config, chosen, concurrency=concurrency, prefetch=prefetch, name=name)


def _run_loop(main, config) -> None:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)
    eventloop.run(runner(), config.event_loop)


@click.command()
@click.option("--reuse-port", is_flag=True,
              help="Bind with SO_REUSEPORT, so that several ingress processes share the ports.")
@pass_ctx
def ingress(ctx: Context, reuse_port: bool) -> None:
    """Run only the SMTP listeners (publishing to the smtp_in queue); SIGHUP reloads TLS and rules."""
    from mailpipe.ingress.server import IngressContext, start_ingress
    from mailpipe.workers.app import create_app, ingress_publishers
    ids = _start(ctx, "mailpipe-ingress")
    metrics_server.role_started(ctx.config, "ingress")
    config, directory, spool = ctx.config, ctx.directory(), ctx.spool()
    app = create_app(config)

    async def main(stop: asyncio.Event) -> None:
        ictx = IngressContext(config=config, directory=directory, spool=spool, **ingress_publishers(app))
        servers = await start_ingress(ictx, reuse_port=reuse_port)
        process.drop_privileges(config, ids)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, ictx.reload)
        await stop.wait()
        for server in servers:
            server.close()
        ictx.flow.stop()
    _run_loop(main, config)


@click.command()
@pass_ctx
def scheduler(ctx: Context) -> None:
    """Run only the scheduler/sweeper (republishes deferred and stalled messages)."""
    from mailpipe.core.clock import SystemClock
    from mailpipe.workers.app import create_app, publish
    from mailpipe.workers.scheduler import Scheduler
    process.drop_privileges(ctx.config, _start(ctx, "mailpipe-scheduler"))
    metrics_server.role_started(ctx.config, "scheduler")
    app = create_app(ctx.config)
    sched = Scheduler(ctx.spool(), functools.partial(publish, app), ctx.config, SystemClock())

    async def main(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            await loop.run_in_executor(None, sched.tick)
            try:
                await asyncio.wait_for(stop.wait(), ctx.config.pipeline.sweep_interval)
            except asyncio.TimeoutError:
                pass
    _run_loop(main, ctx.config)


def _access_command(name: str, module: str, cls: str):
    @click.command(name)
    @pass_ctx
    def command(ctx: Context) -> None:
        from mailpipe.core import authlimit
        from mailpipe.core.tls import TlsContexts
        ids = _start(ctx, f"mailpipe-{name}")
        metrics_server.role_started(ctx.config, name)
        service_cls = getattr(__import__(module, fromlist=[cls]), cls)
        config = ctx.config

        async def main(stop: asyncio.Event) -> None:
            tls = TlsContexts(config.tls.cert, config.tls.key)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, tls.reload)
            service = service_cls(config, ctx.directory(), tls, limiter=authlimit.from_config(config.auth))
            await service.start()
            process.drop_privileges(config, ids)
            await stop.wait()
            await service.stop()
        _run_loop(main, config)
    command.help = (f"Run only the {name.upper()} server (SIGHUP reloads the TLS certificate); "
                    "started as root with [process] user set, it runs as that user once bound.")
    return command


def register(cli: click.Group) -> None:
    for command in (serve, worker, ingress, scheduler,
                    _access_command("imap", "mailpipe.access.imap.server", "ImapService"),
                    _access_command("pop3", "mailpipe.access.pop3.server", "Pop3Service")):
        cli.add_command(command)
