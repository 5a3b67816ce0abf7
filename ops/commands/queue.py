"""``mailpipe queue ...``: see and control every waiting message (like postqueue/postsuper).

Owns: the queue commands. ``list`` streams the spool's listing (one line or one
JSON object per message, never the whole backlog in memory); ``list`` and the
bulk forms of ``hold``, ``release``, ``delete`` and ``retry`` take the same
filters (``--state``, ``--sender``, ``--recipient``, ``--domain``,
``--older-than``); a bulk change prints the count and asks first (``--yes``
skips it; ``retry --all`` flushes every deferred message without asking, like
``postqueue -f``). A corrupt entry is listed as ``corrupt`` with its reason;
``move-aside`` takes it (or any entry) out of the queue into ``<spool>/aside/``.

Must not: read or write spool files itself (the ``Spool`` interface does).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console

from mailpipe.core.ids import is_queue_id
from mailpipe.ops.cli import Context, pass_ctx
from mailpipe.spool.interface import ALL, CORRUPT, CorruptEntry, Listed, Query
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


STATES = [s.value for s in State if s != State.DONE] + [CORRUPT]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    found = _DURATION.match(value.strip().lower())
    if not found:
        raise click.BadParameter(f"{value!r}: give seconds or a number with s, m, h or d (e.g. 30m)",
                                 param_hint="--older-than")
    return float(found.group(1)) * _UNIT[found.group(2)]


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The filters shared by ``list`` and the bulk commands."""
    for option in reversed((
        click.option("--state", type=click.Choice(STATES), default=None, help="Only messages in this state."),
        click.option("--sender", default=None, help="Only messages from this address (<> : null sender)."),
        click.option("--recipient", default=None, help="Only messages with this open recipient."),
        click.option("--domain", default=None, help="Only messages with an open recipient in this domain."),
        click.option("--older-than", default=None, help="Only messages received longer ago (90, 30m, 2h, 1d)."),
    )):
        command = option(command)
    return command


def _query(filters: dict[str, Any], now: float, allowed: tuple[str, ...] | None = None) -> Query | None:
    """The Query of the given filters (None if none was given), narrowed to ``allowed`` states."""
    if all(v is None for v in filters.values()):
        return None
    age = _duration(filters.get("older_than"))
    sender = filters.get("sender")
    states = frozenset([filters["state"]]) if filters.get("state") else None
    if allowed is not None:
        states = frozenset(allowed) & states if states is not None else frozenset(allowed)
    return Query(states=states, sender="" if sender == "<>" else sender, recipient=filters.get("recipient"),
                 domain=filters.get("domain"), received_before=None if age is None else now - age)


def _row(row: Listed, now: float) -> dict:
    return {"id": row.id, "age": round(now - row.received_at, 1), "size": row.size, "sender": row.sender,
            "recipients": row.recipients, "stage": row.stage, "state": row.state, "attempts": row.attempts,
            "next_attempt": row.next_attempt, "last_error": row.last_error}


def _line(row: Listed, now: float) -> str:
    age = f"{now - row.received_at:.0f}s" if row.received_at else "-"
    text = (f"{row.id}  {row.state:<10} {age:>8} {row.size:>9} {row.attempts:>3}  {row.stage or '-':<9} "
            f"{row.sender or '<>'} -> {', '.join(row.recipients) or '-'}")
    return text + (f"\n{'':18}{row.last_error}" if row.last_error else "")


def _stream(lines: Iterator[str]) -> None:
    """Write lines to stdout through its buffer (no flush per line); a closed pipe ends quietly."""
    out = sys.stdout
    try:
        for line in lines:
            out.write(line)
            out.write("\n")
        out.flush()
    except BrokenPipeError:
        sys.stderr.close()            # the reader (head, less) is gone: nothing more to say
        raise SystemExit(0) from None


@queue.command("list")
@filter_options
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one object per message.")
@pass_ctx
def list_(ctx: Context, as_json: bool, **filters: Any) -> None:
    """List spool entries: queue ID, state, age, size, attempts, stage, sender -> recipients, last error."""
    now = time.time()
    rows = ctx.spool().listing(_query(filters, now) or ALL)
    if as_json:
        _stream(_json_array(json.dumps(_row(r, now)) for r in rows))
        return
    count = [0]

    def lines() -> Iterator[str]:
        yield f"{'queue ID':<16}  {'state':<10} {'age':>8} {'size':>9} {'att':>3}  {'stage':<9} sender -> recipients"
        for row in rows:
            count[0] += 1
            yield _line(row, now)
    _stream(lines())
    click.echo(f"{count[0]} message(s)")


def _json_array(items: Iterator[str]) -> Iterator[str]:
    first = True
    for item in items:
        yield ("[" if first else ",") + item
        first = False
    yield "[]" if first else "]"


def _load(ctx: Context, queue_id: str) -> Entry:
    if not is_queue_id(queue_id):
        raise click.ClickException(f"not a queue ID: {queue_id}")
    try:
        return ctx.spool().load(queue_id)
    except FileNotFoundError:
        raise click.ClickException(f"{queue_id}: no such message") from None
    except CorruptEntry as exc:
        raise click.ClickException(f"{queue_id}: corrupt spool entry ({exc.reason}); "
                                   f"'mailpipe queue move-aside {queue_id}' sets it aside") from None


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


class Publisher:
    """Publishes queue IDs for the commands that restart messages; one Celery app for a bulk run."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._app: Any = None

    def __call__(self, stage: str, queue_id: str) -> None:
        from mailpipe.workers.app import create_app
        from mailpipe.workers.app import publish as do_publish
        if self._app is None:
            self._app = create_app(self.ctx.config)
        do_publish(self._app, stage, queue_id)


def _change(ctx: Context, queue_id: str, allowed: tuple[State, ...], new_state: State, event: str,
            publish: Publisher | None) -> None:
    _load(ctx, queue_id)
    with ctx.locked(queue_id) as spool:
        entry = spool.load(queue_id)
        if entry.state not in allowed:
            raise click.ClickException(f"{queue_id}: is {entry.state.value}, expected {'/'.join(allowed)}")
        entry.state, entry.next_attempt = new_state, None
        entry.record(time.time(), "operator", event)
        spool.save(entry)
    if publish is not None:
        publish(entry.stage, queue_id)


def _bulk(ctx: Context, queue_id: str | None, filters: dict[str, Any], yes: bool, allowed: tuple[str, ...],
          act: Callable[[str], None], verb: str, done_text: str) -> None:
    """One message by ID, or every message the filters match (counted, confirmed, then changed)."""
    given = any(v is not None for v in filters.values())
    if queue_id and given:
        raise click.UsageError("give a queue ID or filters, not both")
    if queue_id:
        act(queue_id)
        return
    query = _query(filters, time.time(), allowed)
    if query is None:
        raise click.UsageError("give a queue ID or at least one filter (--state, --sender, --recipient, "
                               "--domain, --older-than)")
    ids = [row.id for row in ctx.spool().listing(query)]       # IDs only: the count comes before the change
    _run_bulk(ids, yes, act, verb, done_text)


def _run_bulk(ids: list[str], yes: bool, act: Callable[[str], None], verb: str, done_text: str) -> None:
    if not ids:
        click.echo("0 message(s) match")
        return
    if not yes:
        click.confirm(f"{verb} {len(ids)} message(s)?", abort=True)
    done = 0
    for qid in ids:
        try:
            act(qid)
            done += 1
        except click.ClickException as exc:     # changed state or busy meanwhile: say so, go on
            click.echo(exc.format_message(), err=True)
    click.echo(f"{done} message(s) {done_text}")


def _echoing(act: Callable[[str], None], event: str) -> Callable[[str], None]:
    def single(queue_id: str) -> None:
        act(queue_id)
        click.echo(f"{queue_id}: {event}")
    return single


yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask before changing several messages.")
HOLDABLE = (State.ACTIVE, State.DEFERRED)
RELEASABLE = (State.HOLD, State.DEAD)


@queue.command("hold")
@click.argument("queue_id", required=False)
@filter_options
@yes_option
@pass_ctx
def hold(ctx: Context, queue_id: str | None, yes: bool, **filters: Any) -> None:
    """Keep a message (or every matching one) in the spool until released."""
    def act(qid: str) -> None:
        _change(ctx, qid, HOLDABLE, State.HOLD, "held", None)
    single = _echoing(act, "held")
    _bulk(ctx, queue_id, filters, yes, HOLDABLE, single if queue_id else act, "hold", "held")


@queue.command("release")
@click.argument("queue_id", required=False)
@filter_options
@yes_option
@pass_ctx
def release(ctx: Context, queue_id: str | None, yes: bool, **filters: Any) -> None:
    """Release a held (or dead) message, or every matching one: it continues at its stage."""
    publisher = Publisher(ctx)

    def act(qid: str) -> None:
        _change(ctx, qid, RELEASABLE, State.ACTIVE, "released", publisher)
    _bulk(ctx, queue_id, filters, yes, RELEASABLE, _echoing(act, "released") if queue_id else act,
          "release", "released")


@queue.command("retry")
@click.argument("queue_id", required=False)
@click.option("--all", "all_", is_flag=True, help="Every deferred message (no question asked).")
@filter_options
@yes_option
@pass_ctx
def retry(ctx: Context, queue_id: str | None, all_: bool, yes: bool, **filters: Any) -> None:
    """Attempt deferred message(s) now (a flush: down marks on their destinations are ignored)."""
    from mailpipe.workers.stages.remote import FLUSH_EVENT
    publisher = Publisher(ctx)

    def act(qid: str) -> None:
        _change(ctx, qid, (State.DEFERRED,), State.ACTIVE, FLUSH_EVENT, publisher)
    if all_:
        if queue_id or any(v is not None for v in filters.values()):
            raise click.UsageError("--all takes no queue ID or filters")
        ids = [row.id for row in ctx.spool().listing(Query(states=frozenset([State.DEFERRED.value])))]
        _run_bulk(ids, True, act, "retry", "scheduled now")
        return
    _bulk(ctx, queue_id, filters, yes, (State.DEFERRED.value,), _echoing(act, FLUSH_EVENT) if queue_id else act,
          "retry", "scheduled now")


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
@click.argument("queue_id", required=False)
@filter_options
@yes_option
@pass_ctx
def delete(ctx: Context, queue_id: str | None, yes: bool, **filters: Any) -> None:
    """Delete a message, or every matching one, from the spool (no bounce)."""
    def act(qid: str) -> None:
        try:
            _load(ctx, qid)
        except click.ClickException:
            if not _corrupt(ctx, qid):       # a corrupt entry can be deleted too
                raise
        with ctx.locked(qid) as spool:
            spool.delete(qid)
    _bulk(ctx, queue_id, filters, yes, tuple(STATES), _echoing(act, "deleted") if queue_id else act,
          "delete", "deleted")


def _corrupt(ctx: Context, queue_id: str) -> bool:
    try:
        ctx.spool().load(queue_id)
    except CorruptEntry:
        return True
    except (FileNotFoundError, ValueError):
        return False
    return False


@queue.command("move-aside")
@click.argument("queue_id", required=False)
@click.option("--corrupt", "corrupt", is_flag=True, help="Every entry the spool cannot read.")
@yes_option
@pass_ctx
def move_aside(ctx: Context, queue_id: str | None, corrupt: bool, yes: bool) -> None:
    """Take an entry (or every corrupt one) out of the queue, kept for inspection (the spool's aside/)."""
    if bool(queue_id) == corrupt:
        raise click.UsageError("give a queue ID or --corrupt")
    spool = ctx.spool()

    def act(qid: str) -> str:
        if not is_queue_id(qid):
            raise click.ClickException(f"not a queue ID: {qid}")
        try:
            return spool.move_aside(qid)
        except FileNotFoundError:
            raise click.ClickException(f"{qid}: no such message in the queue") from None
        except BlockingIOError:
            raise click.ClickException(f"{qid}: busy in a worker right now; try again") from None
    if queue_id:
        click.echo(f"{queue_id}: moved aside to {act(queue_id)}")
        return
    places: list[str] = []
    ids = [row.id for row in spool.listing(Query(states=frozenset([CORRUPT])))]
    _run_bulk(ids, yes, lambda qid: places.append(act(qid)), "move aside", "moved aside")
    if places:
        click.echo(f"kept in {places[0].rpartition('/')[0]}/")


def register(cli: click.Group) -> None:
    cli.add_command(queue)
