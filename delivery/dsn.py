"""Delivery status notifications (RFC 3464 ``multipart/report``) and the never-bounce-a-bounce rule.

Owns: ``build_dsn`` (a human-readable part, the ``message/delivery-status``
part with per-message and per-recipient fields, and the original message's
headers as ``text/rfc822-headers``; From ``MAILER-DAEMON@<reporting_mta>``,
``Auto-Submitted: auto-replied``; CRLF line endings) and ``should_bounce``.

Must not: send anything. The caller submits the DSN with the null envelope
sender (``MAIL FROM:<>``) so that it can never itself be bounced.
"""

from __future__ import annotations

import secrets
from email.utils import formatdate

from mailpipe.delivery.result import RecipientResult

CRLF = b"\r\n"
NEVER_BOUNCE_LOCALPARTS = frozenset({"mailer-daemon", "mailer_daemon", "double-bounce"})


def should_bounce(sender: str) -> bool:
    """False for the null sender and for MAILER-DAEMON-like senders (never bounce a bounce)."""
    address = sender.strip().strip("<>").strip()
    if not address:
        return False
    return address.rpartition("@")[0].lower() not in NEVER_BOUNCE_LOCALPARTS


def _clean(text: str) -> str:
    """One header-safe line: no CR/LF (a remote reply must not inject fields)."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def _date(ts: float) -> str:
    return formatdate(ts, localtime=False, usegmt=True)


def original_headers(message: bytes) -> bytes:
    """The header section of ``message``, CRLF-terminated lines, without the blank line."""
    text = message.replace(b"\r\n", b"\n")
    head = text.split(b"\n\n", 1)[0]
    return CRLF.join(head.split(b"\n")) + CRLF


def _human(failed: list[RecipientResult], reporting_mta: str, delayed: bool) -> str:
    if delayed:
        intro = ("This is the mail system at host {0}.\n\nYour message could not be delivered\n"
                 "yet to the recipients below. It is still being retried; you do not need\n"
                 "to send it again.\n")
    else:
        intro = ("This is the mail system at host {0}.\n\nYour message could not be delivered\n"
                 "to one or more recipients. It has been given up on; the details follow.\n")
    lines = [intro.format(reporting_mta)]
    for result in failed:
        where = f" (from {result.relay})" if result.relay != "none" else ""
        lines.append(f"<{_clean(result.recipient)}>: {_clean(result.reply)}{where}")
    return "\n".join(lines) + "\n"


def _recipient_fields(result: RecipientResult, delayed: bool, now: float, retry_until: float | None) -> list[str]:
    fields = [f"Final-Recipient: rfc822; {_clean(result.recipient)}",
              f"Action: {'delayed' if delayed else 'failed'}",
              f"Status: {result.enhanced}"]
    if result.relay != "none":
        fields.append(f"Remote-MTA: dns; {result.relay.split('[', 1)[0]}")
    if result.remote:
        fields.append(f"Diagnostic-Code: smtp; {_clean(result.reply)}")
    else:
        fields.append(f"Diagnostic-Code: X-Mailpipe; {_clean(result.reply)}")
    fields.append(f"Last-Attempt-Date: {_date(now)}")
    if delayed and retry_until is not None:
        fields.append(f"Will-Retry-Until: {_date(retry_until)}")
    return fields


def _status_part(failed: list[RecipientResult], *, reporting_mta: str, queue_id: str, arrival: float,
                 delayed: bool, now: float, retry_until: float | None) -> str:
    blocks = ["\n".join([f"Reporting-MTA: dns; {reporting_mta}",
                         f"X-Mailpipe-Queue-ID: {queue_id}",
                         f"Arrival-Date: {_date(arrival)}"])]
    for result in failed:
        blocks.append("\n".join(_recipient_fields(result, delayed, now, retry_until)))
    return "\n\n".join(blocks) + "\n"


def _boundary(queue_id: str, now: float, body: bytes) -> str:
    for _ in range(8):
        candidate = f"{queue_id}.{int(now)}.{secrets.token_hex(8)}/dsn"
        if candidate.encode() not in body:
            return candidate
    raise RuntimeError("no free MIME boundary")  # astronomically unlikely


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


def build_dsn(original: bytes, sender: str, failed: list[RecipientResult], *, reporting_mta: str,
              arrival: float, queue_id: str, delayed: bool = False, now: float,
              retry_until: float | None = None) -> bytes:
    """The DSN for ``failed`` recipients of ``original`` (or a delay warning), as CRLF bytes."""
    headers = original_headers(original)
    human = _crlf(_human(failed, reporting_mta, delayed))
    status = _crlf(_status_part(failed, reporting_mta=reporting_mta, queue_id=queue_id,
                                arrival=arrival, delayed=delayed, now=now, retry_until=retry_until))
    boundary = _boundary(queue_id, now, headers + human + status)
    subject = "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    eightbit = any(b > 127 for b in headers)
    top = [f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
           f"To: <{_clean(sender.strip('<>'))}>",
           f"Subject: {subject}",
           f"Date: {_date(now)}",
           f"Message-ID: <{int(now)}.{queue_id}.{secrets.token_hex(4)}@{reporting_mta}>",
           "Auto-Submitted: auto-replied",
           "MIME-Version: 1.0",
           f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
           f"Content-Transfer-Encoding: {'8bit' if eightbit else '7bit'}",
           "", "This is a MIME-encapsulated message.", ""]
    parts = [(b"Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii", human),
             (b"Content-Description: Delivery report\r\nContent-Type: message/delivery-status", status),
             (b"Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers",
              headers)]
    out = [_crlf("\n".join(top))]
    for part_headers, body in parts:
        out += [b"--" + boundary.encode() + CRLF, part_headers + CRLF + CRLF, body + CRLF]
    out.append(b"--" + boundary.encode() + b"--" + CRLF)
    return b"".join(out)
