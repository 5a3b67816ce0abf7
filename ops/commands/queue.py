"""``mailpipe queue ...``: see and control every waiting message (like postqueue/postsuper)."""

from __future__ import annotations

import json
import time

import click
from rich.console import Console
from rich.table import Table

from mailpipe.core.ids import is_queue_id
from mailpipe.ops.cli import Context, pass_ctx
from mailpipe.spool.model import Entry, State


@click.group()
def queue() -> None:
    """Queue depths and spool entries."""


@queue.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON snapshot.")
@click.option("--watch", is_flag=True, help="Live view refreshed every second (Ctrl-C to stop).")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Refresh interval for --watch (s).")
@click.option("--count", type=int, default=None, help="With --watch: stop after this many refreshes.")
@pass_ctx
def status(ctx: Context, as_json: bool, watch: bool, interval: float, count: int | None) -> None:
    """Depth, consumers, rates and oldest age per stage queue; deferred, held, quarantined, dead."""
    from mailpipe.ops.queue_view import render_status, watch_status
    from mailpipe.ops.watch import status_snapshot
    if watch:
        watch_status(ctx.config, ctx.spool(), interval, count)
        return
    snap = status_snapshot(ctx.config, ctx.spool(), time.time())
    if as_json:
        click.echo(json.dumps(snap, indent=2))
        return
    Console().print(render_status(snap, None))


def _row(entry: Entry, now: float) -> dict:
    return {"id": entry.id, "age": round(now - entry.received_at, 1), "size": entry.size,
            "sender": entry.sender, "recipients": [r.address for r in entry.open_recipients()] or
            [r.address for r in entry.recipients], "stage": entry.stage, "state": entry.state.value,
            "attempts": entry.attempts, "next_attempt": entry.next_attempt, "last_error": entry.last_error}


@queue.command("list")
@click.option("--state", type=click.Choice([s.value for s in State if s != State.DONE]), default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_(ctx: Context, state: str | None, as_json: bool) -> None:
    """List spool entries: queue ID, age, size, sender, recipients, stage, state, last error."""
    now = time.time()
    rows = [_row(e, now) for e in ctx.spool().entries() if state is None or e.state.value == state]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    for col in ("id", "age", "size", "sender", "recipients", "stage", "state", "attempts", "last error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["id"], f"{r['age']:.0f}s", str(r["size"]), r["sender"] or "<>",
                      ", ".join(r["recipients"]), r["stage"], r["state"], str(r["attempts"]), r["last_error"])
    Console(width=200).print(table)
    click.echo(f"{len(rows)} message(s)")


def _load(ctx: Context, queue_id: str) -> Entry:
    if not is_queue_id(queue_id):
        raise click.ClickException(f"not a queue ID: {queue_id}")
    try:
        return ctx.spool().load(queue_id)
    except FileNotFoundError:
        raise click.ClickException(f"{queue_id}: no such message") from None


@queue.command("show")
@click.argument("queue_id")
@pass_ctx
def show(ctx: Context, queue_id: str) -> None:
    """Envelope, state, trace and headers of one message."""
    entry = _load(ctx, queue_id)
    click.echo(json.dumps(json.loads(entry.model_dump_json()), indent=2))
    if entry.state != State.DONE:
        try:
            raw = ctx.spool().message(queue_id)
        except FileNotFoundError:
            click.echo("(the message finished while it was shown)")
            return
        click.echo(raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace"))


def _change(ctx: Context, queue_id: str, allowed: tuple[State, ...], new_state: State, event: str,
            publish: bool) -> None:
    _load(ctx, queue_id)
    with ctx.locked(queue_id) as spool:
        entry = spool.load(queue_id)
        if entry.state not in allowed:
            raise click.ClickException(f"{queue_id}: is {entry.state.value}, expected {'/'.join(allowed)}")
        entry.state, entry.next_attempt = new_state, None
        entry.record(time.time(), "operator", event)
        spool.save(entry)
    if publish:
        from mailpipe.workers.app import create_app
        from mailpipe.workers.app import publish as do_publish
        do_publish(create_app(ctx.config), entry.stage, queue_id)
    click.echo(f"{queue_id}: {event}")


@queue.command("hold")
@click.argument("queue_id")
@pass_ctx
def hold(ctx: Context, queue_id: str) -> None:
    """Keep a message in the spool until released."""
    _change(ctx, queue_id, (State.ACTIVE, State.DEFERRED), State.HOLD, "held", publish=False)


@queue.command("release")
@click.argument("queue_id")
@pass_ctx
def release(ctx: Context, queue_id: str) -> None:
    """Release a held (or dead) message: it continues at its stage."""
    _change(ctx, queue_id, (State.HOLD, State.DEAD), State.ACTIVE, "released", publish=True)


@queue.command("retry")
@click.argument("queue_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Every deferred message.")
@pass_ctx
def retry(ctx: Context, queue_id: str | None, all_: bool) -> None:
    """Attempt deferred message(s) now (a flush: down marks on their destinations are ignored)."""
    from mailpipe.workers.stages.remote import FLUSH_EVENT
    if not queue_id and not all_:
        raise click.UsageError("give a queue ID or --all")
    ids = [e.id for e in ctx.spool().entries() if e.state == State.DEFERRED] if all_ else [queue_id]
    if not all_:
        _change(ctx, queue_id, (State.DEFERRED,), State.ACTIVE, FLUSH_EVENT, publish=True)
        return
    done = 0
    for qid in ids:
        try:
            _change(ctx, qid, (State.DEFERRED,), State.ACTIVE, FLUSH_EVENT, publish=True)
            done += 1
        except click.ClickException as exc:     # became busy or active meanwhile: it is being tried
            click.echo(exc.format_message(), err=True)
    click.echo(f"{done} message(s) scheduled now")


@queue.command("bounce")
@click.argument("queue_id")
@pass_ctx
def bounce(ctx: Context, queue_id: str) -> None:
    """Give up on a message now: its open recipients fail and the sender gets a DSN."""
    from mailpipe.workers import bounce as bounces
    from mailpipe.workers.app import create_app
    from mailpipe.workers.app import publish as do_publish
    now = time.time()
    _load(ctx, queue_id)
    with ctx.locked(queue_id) as spool:
        entry = spool.load(queue_id)
        if entry.state == State.DONE:
            raise click.ClickException(f"{queue_id}: already done")
        failed = bounces.give_up(entry, now)
        app = create_app(ctx.config)
        dsn = bounces.send_dsn(spool, lambda stage, qid: do_publish(app, stage, qid), ctx.config, entry,
                               spool.message(queue_id), failed, now)
        entry.state, entry.next_attempt = State.DONE, None
        entry.record(now, "operator", "bounced", f"DSN {dsn}" if dsn else "no DSN")
        spool.save(entry)
    click.echo(f"{queue_id}: bounced" + (f", DSN {dsn}" if dsn else " (no DSN: null sender, bounce or spam)"))


@queue.command("delete")
@click.argument("queue_id")
@pass_ctx
def delete(ctx: Context, queue_id: str) -> None:
    """Delete a message from the spool (no bounce)."""
    _load(ctx, queue_id)
    with ctx.locked(queue_id) as spool:
        spool.delete(queue_id)
    click.echo(f"{queue_id}: deleted")


def register(cli: click.Group) -> None:
    cli.add_command(queue)
