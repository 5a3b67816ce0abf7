"""Remote stage: relay the open remote recipients once, then record, schedule or bounce.

Per recipient (``delivery.relay.Relay.deliver_message`` results):

    sent      -> status delivered, detail = the remote's reply
    deferred  -> status deferred; the entry waits in the spool (state deferred,
                 ``next_attempt`` from ``delivery.retry.next_attempt``) and the
                 scheduler republishes it when due (never Celery ETA); held
                 back by our own limits (slots busy, rate): ``held_retry_at``,
                 soon and without backoff, never a worker thread that waits
    failed    -> status failed, and a DSN to the sender (``workers.bounce``)

When the lifetime (``relay.max_lifetime``) is over, deferred recipients fail
with 5.4.7 and get a DSN. An optional delay warning goes out once.

Idempotency: only open (pending/deferred) recipients are tried, and their
statuses are saved in the spool by the pipeline right after this stage, so a
redelivered task never resends to a recipient already delivered. A crash after
the remote server accepted and before that save is the one window where a
duplicate is possible (SMTP cannot tell us); ``recovering`` logs it.

An operator's ``queue retry`` (trace event ``FLUSH_EVENT``) makes the next
attempt ignore and clear down marks and the rate limit (``force``), because the
marks live in worker memory and the CLI runs in another process.

Must not: speak SMTP or DNS itself (``delivery/``), or publish anything other
than a DSN through ``workers.bounce``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailpipe.delivery.result import RecipientResult
from mailpipe.delivery.retry import delay_warning_due, held_retry_at, next_attempt
from mailpipe.core import metrics
from mailpipe.spool.model import Entry, Recipient, RecipientStatus, State
from mailpipe.workers import bounce

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

log = logging.getLogger("mailpipe.remote")

STAGE = "remote"
FLUSH_EVENT = "retry requested"      #: recorded by ``queue retry`` (stage "operator")
DELAY_EVENT = "delay-warning"
ATTEMPT_EVENT = "relayed"            #: one relay attempt of this stage
_STATUS: dict[str, RecipientStatus] = {"sent": "delivered", "deferred": "deferred", "failed": "failed"}
#: replies of ``delivery.relay`` when our own limits held a message back (retried soon, no backoff)
LOCAL_LIMIT_PREFIXES = ("4.7.0 rate limit", "4.4.5 ")


def flush_requested(entry: Entry) -> bool:
    """True when an operator asked for a retry after the last remote attempt."""
    for event in reversed(entry.trace):
        if event.stage == STAGE and event.event == ATTEMPT_EVENT:
            return False
        if event.stage == "operator" and event.event == FLUSH_EVENT:
            return True
    return False


def outgoing(entry: Entry, message: bytes) -> bytes:
    """The message as relayed: headers the filters added, then the spooled message."""
    if not entry.added_headers:
        return message
    head = "".join(f"{name}: {value}\r\n" for name, value in entry.added_headers)
    return head.encode("utf-8", "surrogateescape") + message


def run(rt: Runtime, entry: Entry, message: bytes, recovering: bool) -> None:
    rcpts = entry.open_recipients(STAGE)
    if not rcpts:
        return
    if recovering:
        log.warning("%s: remote stage recovering from a crash; recipients still open may get a "
                    "duplicate if the remote accepted before the crash", entry.id)
    attempt = 1 + max(r.attempts for r in rcpts)
    results = rt.relay.deliver_message(entry.sender, [r.address for r in rcpts], outgoing(entry, message),
                                       entry.id, arrival=entry.received_at, attempts=attempt,
                                       force=flush_requested(entry))
    now = rt.clock.now()
    by_address = {r.recipient: r for r in results}
    outcome = [(rcpt, by_address[rcpt.address]) for rcpt in rcpts]
    for rcpt, result in outcome:
        _apply(rcpt, result)
    entry.record(now, STAGE, ATTEMPT_EVENT, _summary(results))
    failed = [res for _, res in outcome if res.status == "failed"]
    deferred = [(rcpt, res) for rcpt, res in outcome if res.status == "deferred"]
    if deferred:
        failed += _defer_or_expire(rt, entry, message, deferred, attempt, now)
    if failed:
        _bounce(rt, entry, message, _unique(failed), now)


def local_limit(result: RecipientResult) -> bool:
    """A deferral by our own per-destination limits (rate, connection slots): no remote was tried."""
    return result.status == "deferred" and result.reply.startswith(LOCAL_LIMIT_PREFIXES)


def _apply(rcpt: Recipient, result: RecipientResult) -> None:
    rcpt.status, rcpt.detail = _STATUS[result.status], result.reply
    rcpt.attempts += 0 if local_limit(result) else 1
    if result.status == "sent":
        metrics.delivered(STAGE)


def _defer_or_expire(rt: Runtime, entry: Entry, message: bytes, deferred: list[tuple[Recipient, RecipientResult]],
                     attempt: int, now: float) -> list[RecipientResult]:
    """Schedule the next attempt; once the lifetime is over, fail the deferred recipients instead."""
    cfg = rt.config.relay
    when = next_attempt(attempt, entry.received_at, now, cfg)
    if when is None:
        return _expire(entry, deferred, now, cfg.max_lifetime)
    if all(local_limit(res) for _, res in deferred):
        when = min(when, held_retry_at(_limit_wait(rt, deferred[0][0].address), now, cfg))
    reason = deferred[0][1].reply
    entry.attempts += 1
    entry.state, entry.stage = State.DEFERRED, STAGE
    entry.next_attempt, entry.last_error = when, reason
    entry.record(now, STAGE, "deferred", f"{reason}; next attempt in {when - now:.0f}s")
    log.warning("%s: stage=remote, status=deferred (%s), next attempt in %.0fs", entry.id, reason, when - now)
    metrics.deferred(STAGE)
    warned = any(e.event == DELAY_EVENT for e in entry.trace)
    if delay_warning_due(entry.received_at, now, warned, cfg):
        bounce.send_dsn(rt.spool, rt.publish, rt.config, entry, message,
                        _unique([res for _, res in deferred]), now, delayed=True)
    return []


def _limit_wait(rt: Runtime, address: str) -> float:
    """Seconds until the rate limit of the destination lets one more message go (0 = not rate-held)."""
    return rt.relay.state.rate_delay(address.rpartition("@")[2].rstrip(".").lower())


def _expire(entry: Entry, deferred: list[tuple[Recipient, RecipientResult]], now: float,
            lifetime: float) -> list[RecipientResult]:
    expired = []
    for rcpt, result in deferred:
        text = f"5.4.7 message expired after {now - entry.received_at:.0f} s in the queue " \
               f"(max_lifetime {lifetime:.0f} s); last error: {result.reply}"
        rcpt.status, rcpt.detail = "failed", text
        expired.append(RecipientResult(result.recipient, "failed", text, result.relay))
    entry.last_error = expired[0].reply
    entry.record(now, STAGE, "expired", f"{len(expired)} recipient(s) given up")
    log.warning("%s: stage=remote, status=expired (%d recipient(s))", entry.id, len(expired))
    return expired


def _bounce(rt: Runtime, entry: Entry, message: bytes, failed: list[RecipientResult], now: float) -> None:
    if bounce.send_dsn(rt.spool, rt.publish, rt.config, entry, message, failed, now):
        metrics.bounced()


def _unique(results: list[RecipientResult]) -> list[RecipientResult]:
    return list({r.recipient: r for r in results}.values())


def _summary(results: list[RecipientResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
