"""Bounces: turn failed recipients of a spooled message into a DSN that enters the pipeline.

Owns: the decision whether a message may be bounced at all (``may_bounce``:
never for the null sender or MAILER-DAEMON, never for a bounce we made, never
for mail a filter judged spam or a virus; DESIGN guarantee 5), and
``send_dsn``: build the RFC 3464 report (``delivery.dsn.build_dsn``), store it
durably as a NEW spool entry with the null envelope sender, ``is_bounce=True``
and the original sender as its only recipient, then publish its queue ID to
``smtp_in`` so that it takes the normal path (local Maildir or relay).

If the publish fails the entry stays active in the spool and the sweeper
republishes it later, so a DSN is never lost once it is spooled. The DSN is
spooled before the original entry is saved: a worker killed between the two
redoes the attempt and may spool a second DSN (a duplicate notice, never a
lost one).

Must not: decide which recipients failed (the ``remote`` stage and the
``queue bounce`` command do), or talk to the broker other than through the
``publish`` callable it is given.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from mailpipe.core.config import Config
from mailpipe.core.errors import TransientError
from mailpipe.core.ids import new_queue_id
from mailpipe.delivery.dsn import build_dsn, should_bounce
from mailpipe.delivery.result import RecipientResult
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry, Recipient

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

log = logging.getLogger("mailpipe.bounce")

#: (stage, event) pairs on a trace that mark a message as spam or a virus: never bounced
_JUDGED = frozenset({("spam", "tag"), ("spam", "junk"), ("spam", "quarantine"), ("spam", "discard"),
                     ("spam", "reject"), ("antivirus", "quarantine"), ("antivirus", "discard"),
                     ("antivirus", "reject")})

GENERATED_EVENT = "generated"    #: trace event of a new DSN entry
BOUNCED_EVENT = "bounced"        #: trace event on the original naming the DSN's queue ID


def judged_unwanted(entry: Entry) -> bool:
    """True when the spam or antivirus stage flagged this message."""
    return any((event.stage, event.event) in _JUDGED for event in entry.trace)


def may_bounce(entry: Entry) -> tuple[bool, str]:
    """(allowed, reason when not): whether a DSN may go to ``entry.sender``."""
    if entry.is_bounce:
        return False, "the message is itself a bounce"
    if not should_bounce(entry.sender):
        return False, "null or MAILER-DAEMON sender"
    if judged_unwanted(entry):
        return False, "judged spam or a virus"
    return True, ""


def dsn_entry(original: Entry, dsn: bytes, now: float) -> Entry:
    """The spool entry of a DSN for ``original``: null sender, one recipient (the original sender)."""
    entry = Entry(id=new_queue_id(now), sender="", recipients=[Recipient(address=original.sender)],
                  size=len(dsn), received_at=now, helo=None, is_bounce=True)
    entry.record(now, "bounce", GENERATED_EVENT, f"DSN for {original.id}")
    return entry


def send_dsn(spool: FilesystemSpool, publish: Callable[[str, str], None], config: Config, original: Entry, message: bytes, failed: list[RecipientResult],
             now: float, *, delayed: bool = False) -> str | None:
    """Spool and publish a DSN for ``failed`` recipients; returns its queue ID, or None if not allowed."""
    allowed, why = may_bounce(original)
    if not failed or not allowed:
        if failed:
            log.info("%s: no DSN (%s)", original.id, why)
        return None
    retry_until = original.received_at + config.relay.max_lifetime if delayed else None
    dsn = build_dsn(message, original.sender, failed, reporting_mta=config.hostname,
                    arrival=original.received_at, queue_id=original.id, delayed=delayed, now=now,
                    retry_until=retry_until)
    entry = dsn_entry(original, dsn, now)
    spool.create(entry, [dsn])
    kind = "delay warning" if delayed else "DSN"
    original.record(now, "bounce", "delay-warning" if delayed else BOUNCED_EVENT,
                    f"{kind} {entry.id} to <{original.sender}> for "
                    + ", ".join(f"<{r.recipient}>" for r in failed))
    log.info("%s: sender non-delivery notification: %s (%s)", original.id, entry.id, kind)
    try:
        publish("smtp_in", entry.id)
    except TransientError as exc:
        log.warning("%s: publish of %s failed (%s); the sweeper will republish it", original.id, entry.id, exc)
    return entry.id


OPERATOR_REPLY = "5.0.0 returned to the sender by the mail administrator (queue bounce)"


def give_up(entry: Entry, now: float, reason: str = OPERATOR_REPLY) -> list[RecipientResult]:
    """Fail every open recipient of ``entry`` now (``queue bounce``); returns their results for a DSN."""
    failed = []
    for rcpt in entry.open_recipients():
        rcpt.status, rcpt.detail = "failed", f"{reason}; last: {rcpt.detail}" if rcpt.detail else reason
        failed.append(RecipientResult(rcpt.address, "failed", rcpt.detail))
    entry.last_error = reason
    return list({r.recipient: r for r in failed}.values())


def bounce_local_failures(rt: Runtime, entry: Entry, message: bytes, recipients: list[Recipient]) -> str | None:
    """A DSN for recipients that failed in a local stage (user gone after RCPT, mail loop)."""
    failed = [RecipientResult(recipient=r.address, status="failed", reply=r.detail) for r in recipients]
    return send_dsn(rt.spool, rt.publish, rt.config, entry, message, failed, rt.clock.now())
