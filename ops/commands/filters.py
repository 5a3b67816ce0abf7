"""``mailpipe rules check|test`` and ``mailpipe quarantine list|show|release|delete``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mailpipe.core.ids import is_queue_id
from mailpipe.ops.cli import Context, pass_ctx
from mailpipe.spool.model import State


@click.group()
def rules() -> None:
    """Operator rules (see docs/rules.md)."""


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def rules_check(file: str) -> None:
    """Validate a rules file; exit 1 and print FILE:LINE: problem for each error."""
    from mailpipe.filters.rules.tool import check_file
    problems = check_file(file)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{file}: ok")


@rules.command("test")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.argument("message", type=click.Path(dir_okay=False, exists=True))
@click.option("--client-ip", default=None, help="Client IP address the message came from.")
@click.option("--helo", default=None, help="HELO/EHLO name the client gave.")
@click.option("--from", "sender", default=None, help="Envelope sender (MAIL FROM).")
@click.option("--to", "recipients", multiple=True, help="Envelope recipient (RCPT TO); repeatable.")
def rules_test(file: str, message: str, client_ip, helo, sender, recipients) -> None:
    """Show which rules match MESSAGE (an .eml file) and the resulting action; sends nothing."""
    from mailpipe.filters.rules.tool import check_file, explain
    problems = check_file(file)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(1)
    click.echo(explain(file, Path(message).read_bytes(), client_ip=client_ip, helo=helo, sender=sender,
                       recipients=tuple(recipients)))


@click.group()
def quarantine() -> None:
    """Quarantined messages (kept in the spool with their verdict)."""


def _quarantined(ctx: Context, queue_id: str):
    if not is_queue_id(queue_id):
        raise click.ClickException(f"not a queue ID: {queue_id}")
    try:
        entry = ctx.spool().load(queue_id)
    except FileNotFoundError:
        raise click.ClickException(f"{queue_id}: no such message") from None
    if entry.state != State.QUARANTINE:
        raise click.ClickException(f"{queue_id}: not quarantined (state {entry.state.value})")
    return entry


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@pass_ctx
def quarantine_list(ctx: Context, as_json: bool) -> None:
    """List quarantined messages: queue ID, age, sender, recipients, stage and reason."""
    now = time.time()
    rows: list[dict[str, Any]] = [{"id": e.id, "age": round(now - e.received_at), "sender": e.sender,
             "recipients": [r.address for r in e.recipients], "stage": e.stage, "reason": e.last_error}
            for e in ctx.spool().entries() if e.state == State.QUARANTINE]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for col in ("id", "age", "sender", "recipients", "stage", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], f"{r['age']}s", r["sender"] or "<>", ", ".join(r["recipients"]), r["stage"], r["reason"])
    Console(width=200).print(table)
    click.echo(f"{len(rows)} quarantined message(s)")


@quarantine.command("show")
@click.argument("queue_id")
@pass_ctx
def quarantine_show(ctx: Context, queue_id: str) -> None:
    """Show a quarantined message's spool entry and its header."""
    entry = _quarantined(ctx, queue_id)
    click.echo(json.dumps(json.loads(entry.model_dump_json()), indent=2))
    raw = ctx.spool().message(queue_id)
    click.echo(raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"))


@quarantine.command("release")
@click.argument("queue_id")
@pass_ctx
def quarantine_release(ctx: Context, queue_id: str) -> None:
    """Deliver a quarantined message: it continues after the stage that quarantined it."""
    from mailpipe.workers.app import create_app, publish
    _quarantined(ctx, queue_id)
    with ctx.locked(queue_id) as spool:
        entry = spool.load(queue_id)
        entry.record(time.time(), "operator", "released", "from quarantine")
        entry.state, entry.last_error = State.ACTIVE, ""
        spool.save(entry)
    publish(create_app(ctx.config), entry.stage, queue_id)
    click.echo(f"{queue_id}: released, continues at {entry.stage}")


@quarantine.command("delete")
@click.argument("queue_id")
@pass_ctx
def quarantine_delete(ctx: Context, queue_id: str) -> None:
    """Delete a quarantined message for good (nothing is delivered or bounced)."""
    _quarantined(ctx, queue_id)
    with ctx.locked(queue_id) as spool:
        spool.delete(queue_id)
    click.echo(f"{queue_id}: deleted")


def register(cli: click.Group) -> None:
    cli.add_command(rules)
    cli.add_command(quarantine)
