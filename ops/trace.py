"""One message's journey as text: envelope, client, every stage's event and timing, final state.

Owns: turning a spool ``Entry`` (in flight or finished; finished traces are kept
for ``[pipeline] trace_retention``) into the lines ``mailpipe trace ID`` prints,
and into a JSON-ready dict.

Must not: read the spool or print (the CLI does both).
"""

from __future__ import annotations

import time

from mailpipe.spool.model import Entry, State

WIDTH_STAGE = 10
WIDTH_EVENT = 16


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def header_lines(entry: Entry) -> list[str]:
    lines = [f"queue ID  {entry.id}",
             f"from      <{entry.sender}>   size {entry.size} bytes",
             f"client    [{entry.client_ip or '-'}]   helo {entry.helo or '-'}"
             f"   auth {entry.auth_user or '-'}",
             f"received  {_clock(entry.received_at)}"]
    for rcpt in entry.recipients:
        boxes = f" -> {', '.join(rcpt.mailboxes)}" if rcpt.mailboxes and rcpt.mailboxes != [rcpt.address] else ""
        detail = f" ({rcpt.detail})" if rcpt.detail else ""
        tries = f", {rcpt.attempts} attempt(s)" if rcpt.attempts else ""
        lines.append(f"to        <{rcpt.address}>{boxes}  [{rcpt.route or 'unrouted'}] {rcpt.status}{detail}{tries}")
    return lines


def event_lines(entry: Entry) -> list[str]:
    lines = []
    for event in entry.trace:
        offset = event.at - entry.received_at
        timing = f"  ({event.ms:.1f} ms)" if event.ms is not None else ""
        detail = f"  {event.detail}" if event.detail else ""
        lines.append(f"{_clock(event.at)}  {f'+{offset:.3f}s':>10}  {event.stage:<{WIDTH_STAGE}} "
                     f"{event.event:<{WIDTH_EVENT}}{detail}{timing}")
    return lines


def final_line(entry: Entry, now: float) -> str:
    if entry.state == State.DONE:
        return f"final     done: {_counts(entry)}"
    if entry.state == State.DEFERRED and entry.next_attempt:
        return (f"final     deferred at {entry.stage} (attempt {entry.attempts}), next attempt in "
                f"{max(0.0, entry.next_attempt - now):.0f}s: {entry.last_error}")
    if entry.state == State.ACTIVE:
        return f"final     in flight: waiting for or running stage {entry.stage}"
    reason = f": {entry.last_error}" if entry.last_error else ""
    return f"final     {entry.state.value} at stage {entry.stage}{reason}"


def _counts(entry: Entry) -> str:
    counts: dict[str, int] = {}
    for rcpt in entry.recipients:
        counts[rcpt.status] = counts.get(rcpt.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def render(entry: Entry, now: float) -> list[str]:
    return [*header_lines(entry), "", *event_lines(entry), "", final_line(entry, now)]


def as_dict(entry: Entry) -> dict:
    return {"id": entry.id, "state": entry.state.value, "stage": entry.stage, "sender": entry.sender,
            "client_ip": entry.client_ip, "helo": entry.helo, "auth_user": entry.auth_user,
            "received_at": entry.received_at, "size": entry.size,
            "recipients": [r.model_dump() for r in entry.recipients],
            "events": [e.model_dump() for e in entry.trace],
            "stages": stages_seen(entry)}


def stages_seen(entry: Entry) -> list[str]:
    """Stages named on the trace, in first-seen order."""
    seen: list[str] = []
    for event in entry.trace:
        if event.stage not in seen:
            seen.append(event.stage)
    return seen
