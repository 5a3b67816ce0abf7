"""``mailpipe trace ID`` and ``mailpipe health``: where one message went, and whether the system is well."""

from __future__ import annotations

import json
import sys
import time

import click

from mailpipe.core.ids import is_queue_id
from mailpipe.ops.cli import Context, pass_ctx


@click.command()
@click.argument("queue_id")
@click.option("--json", "as_json", is_flag=True, help="Print the trace as JSON.")
@pass_ctx
def trace(ctx: Context, queue_id: str, as_json: bool) -> None:
    """One message's journey: client, each stage with verdict and timing, deliveries, final state."""
    from mailpipe.ops.trace import as_dict, render
    if not is_queue_id(queue_id):
        raise click.ClickException(f"not a queue ID: {queue_id}")
    try:
        entry = ctx.spool().load(queue_id)
    except FileNotFoundError:
        raise click.ClickException(f"{queue_id}: no such message (never queued, or its trace expired)") from None
    if as_json:
        click.echo(json.dumps(as_dict(entry), indent=2))
        return
    for line in render(entry, time.time()):
        click.echo(line)


@click.command()
@click.option("--skip", multiple=True, type=click.Choice(["broker", "spool", "database", "clamd", "spamd",
                                                          "listeners", "workers"]),
              help="Leave out a check (repeatable), e.g. --skip listeners on a worker-only host.")
@click.option("--verbose", "-v", is_flag=True, help="Also print the checks that passed.")
@pass_ctx
def health(ctx: Context, skip: tuple[str, ...], verbose: bool) -> None:
    """Check broker, spool, database, clamd, spamd, listeners and workers; exit 1 naming each failure."""
    from mailpipe.ops.health import run_checks
    results = run_checks(ctx.config, skip=skip)
    failed = [r for r in results if not r.ok]
    for result in results if verbose else failed:
        click.echo(result.line())
    if failed:
        sys.exit(1)
    if not verbose:
        click.echo(f"healthy: {', '.join(r.name for r in results)}")


def register(cli: click.Group) -> None:
    cli.add_command(trace)
    cli.add_command(health)
