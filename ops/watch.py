"""What ``queue status`` (and ``--watch``) shows: spool summary, per-stage ages, rates, destinations.

Owns: reading the spool once per refresh into a ``SpoolSummary`` (counts per
state, corrupt entries, bytes, oldest deferred age, oldest waiting message per stage, top remote
destinations) and turning two snapshots into in/out rates per stage queue.

Rates: ``in`` counts queue IDs published to the queue (the broker's own
counter where it has one, else the ``mailpipe_queue_published`` metric summed over
the local endpoint and ``[metrics] peers``); ``out`` is in minus the depth change. Without either
source the rates are unknown (``None``), never guessed.

Must not: change the spool or the broker; render (``ops.commands.queue``).
"""

from __future__ import annotations

import contextlib
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from mailpipe.spool.interface import CORRUPT, Spool
from mailpipe.spool.model import State

TOP_DESTINATIONS = 5


@dataclass
class SpoolSummary:
    counts: dict[str, int]
    bytes: int = 0
    oldest_deferred_age: float = 0.0
    oldest_by_stage: dict[str, float] = field(default_factory=dict)   #: active entries waiting at a stage
    destinations: list[tuple[str, int]] = field(default_factory=list)  #: remote domains by waiting messages
    corrupt: int = 0                                                   #: entries the spool cannot read


def spool_summary(spool: Spool, now: float) -> SpoolSummary:
    """One streamed pass over the spool's listing (its index: no entry read twice when unchanged)."""
    counts = {state.value: 0 for state in State if state != State.DONE}
    oldest_deferred, corrupt, stored = 0.0, 0, 0
    oldest: dict[str, float] = {}
    domains: Counter[str] = Counter()
    for row in spool.listing():
        stored += row.bytes
        if row.state == CORRUPT:
            corrupt += 1
            continue
        counts[row.state] = counts.get(row.state, 0) + 1
        if row.state == State.ACTIVE:
            oldest[row.stage] = max(oldest.get(row.stage, 0.0), now - (row.updated_at or row.received_at))
        if row.state == State.DEFERRED:
            oldest_deferred = max(oldest_deferred, now - row.received_at)
        if row.stage == "remote" and row.state in (State.ACTIVE, State.DEFERRED):
            domains.update(row.remote_domains)
    return SpoolSummary(counts, stored, round(oldest_deferred, 3), {k: round(v, 3) for k, v in oldest.items()},
                        domains.most_common(TOP_DESTINATIONS), corrupt)


def endpoints(config) -> list[str]:
    """This host's metrics endpoint plus ``[metrics] peers`` (each role's own endpoint), deduplicated."""
    host = config.metrics.listen if config.metrics.listen not in ("0.0.0.0", "::") else "127.0.0.1"
    found = [f"{host}:{config.metrics.port}"] if config.metrics.enabled else []
    return found + [p for p in config.metrics.peers if p not in found]


def published_counts(config, timeout: float = 0.5) -> dict[str, float] | None:
    """``mailpipe_queue_published`` per queue summed over the endpoints; None if none answers."""
    total: dict[str, float] | None = None
    for endpoint in endpoints(config):
        try:
            with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=timeout) as reply:
                text = reply.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
        total = total or {}
        for queue, value in parse_published(text).items():
            total[queue] = total.get(queue, 0.0) + value
    return total


def parse_published(text: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    prefix = 'mailpipe_queue_published_total{queue="'
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, rest = line[len(prefix):].partition('"')
            with contextlib.suppress(ValueError, IndexError):
                counts[name] = counts.get(name, 0.0) + float(rest.split()[-1])
    return counts


@dataclass(frozen=True)
class Rates:
    inbound: float | None
    outbound: float | None


def rates(before: dict, after: dict, seconds: float) -> dict[str, Rates]:
    """Per queue: in/s from published counters, out/s = in - depth change (per second)."""
    result: dict[str, Rates] = {}
    pub0, pub1 = before.get("published"), after.get("published")
    depth0 = {q["queue"]: _held(q) for q in before["queues"]}
    for q in after["queues"]:
        name = q["queue"]
        if pub0 is None or pub1 is None or seconds <= 0:
            result[name] = Rates(None, None)
            continue
        came = max(0.0, pub1.get(name, 0.0) - pub0.get(name, 0.0))
        d0, d1 = depth0.get(name), _held(q)
        went = None if d0 is None or d1 is None else max(0.0, came - (d1 - d0))
        result[name] = Rates(round(came / seconds, 2), None if went is None else round(went / seconds, 2))
    return result


def _held(queue: dict) -> int | None:
    if queue.get("depth") is None:
        return None
    return queue["depth"] + (queue.get("unacked") or 0)


def status_snapshot(config, spool, now: float, with_rates_source: bool = False) -> dict:
    """One snapshot for ``queue status``: stage queues with oldest age, spool counts, destinations."""
    from mailpipe.ops.queues import stage_depths
    summary = spool_summary(spool, now)
    queues = []
    for q in stage_depths(config):
        row = {"stage": q.stage, "queue": q.queue, "depth": q.depth, "unacked": q.unacked,
               "consumers": q.consumers, "oldest_age": summary.oldest_by_stage.get(q.stage, 0.0)}
        queues.append(row)
    snap = {"time": now, "queues": queues, "spool": summary.counts, "spool_bytes": summary.bytes,
            "spool_corrupt": summary.corrupt,
            "oldest_deferred_age": summary.oldest_deferred_age,
            "remote_destinations": [{"domain": d, "messages": n} for d, n in summary.destinations]}
    if with_rates_source:
        snap["published"] = published_counts(config)
    return snap
