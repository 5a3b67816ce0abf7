"""Rendering of ``mailpipe queue status`` and its live ``--watch`` view (rich).

Owns: the tables (stage queues with depth, unacked, consumers, in/out per
second and oldest age; spool states; top remote destinations) and the
refresh loop (``rich.live.Live``), bounded by ``count`` when given.

Must not: compute anything about queues (``ops.watch``) or change state.
"""

from __future__ import annotations

import time

from rich.console import Group
from rich.live import Live
from rich.table import Table

from mailpipe.ops.watch import Rates, rates, status_snapshot


def _n(value: object) -> str:
    return "-" if value is None else str(value)


def _age(seconds: float) -> str:
    if not seconds:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def queue_table(snap: dict, per_queue: dict[str, Rates] | None) -> Table:
    table = Table(title=time.strftime("stage queues at %H:%M:%S", time.localtime(snap["time"])))
    for col in ("stage", "queue", "depth", "unacked", "consumers", "in/s", "out/s", "oldest"):
        table.add_column(col, justify="left" if col in ("stage", "queue") else "right")
    for q in snap["queues"]:
        r = (per_queue or {}).get(q["queue"], Rates(None, None))
        table.add_row(q["stage"], q["queue"], _n(q["depth"]), _n(q["unacked"]), _n(q["consumers"]),
                      _rate(r.inbound), _rate(r.outbound), _age(q.get("oldest_age", 0.0)))
    return table


def spool_table(snap: dict) -> Table:
    table = Table(title="spool")
    for col in ("active", "deferred", "hold", "quarantine", "dead", "corrupt", "bytes", "oldest deferred"):
        table.add_column(col, justify="right")
    counts = snap["spool"]
    table.add_row(*(str(counts.get(k, 0)) for k in ("active", "deferred", "hold", "quarantine", "dead")),
                  str(snap.get("spool_corrupt", 0)), str(snap.get("spool_bytes", 0)),
                  _age(snap.get("oldest_deferred_age", 0.0)))
    return table


def destinations_table(snap: dict) -> Table:
    table = Table(title="remote queue: top destinations")
    table.add_column("domain")
    table.add_column("waiting", justify="right")
    for row in snap.get("remote_destinations", []) or [{"domain": "-", "messages": 0}]:
        table.add_row(row["domain"], str(row["messages"]))
    return table


def render_status(snap: dict, per_queue: dict[str, Rates] | None) -> Group:
    return Group(queue_table(snap, per_queue), spool_table(snap), destinations_table(snap))


def watch_status(config, spool, interval: float = 1.0, count: int | None = None) -> None:
    """Refresh until Ctrl-C (or ``count`` refreshes); rates come from successive snapshots."""
    previous = status_snapshot(config, spool, time.time(), with_rates_source=True)
    shown = 0
    with Live(render_status(previous, None), refresh_per_second=4, screen=False) as live:
        try:
            while count is None or shown < count:
                time.sleep(interval)            # the refresh period of a live view, not a test wait
                current = status_snapshot(config, spool, time.time(), with_rates_source=True)
                live.update(render_status(current, rates(previous, current, current["time"] - previous["time"])))
                previous, shown = current, shown + 1
        except KeyboardInterrupt:
            pass
