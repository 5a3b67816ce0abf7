"""Local delivery stage: each local recipient's mailboxes get one copy, exactly once.

The Maildir file name is derived from the queue ID and the mailbox, so a
redelivered task finds what it already delivered (``mailstore.maildir.deliver``
returns False) instead of writing a second copy.
"""

from __future__ import annotations

import hashlib
import logging
import time

from mailpipe.mailstore.maildir import deliver, maildir_path
from mailpipe.core import metrics
from mailpipe.spool.model import Entry

log = logging.getLogger("mailpipe.local")


def unique_base(entry: Entry, mailbox: str, hostname: str) -> str:
    tag = hashlib.sha1(mailbox.encode()).hexdigest()[:8]
    host = "".join(c for c in hostname if c.isalnum() or c in "-_") or "localhost"
    return f"{int(entry.received_at)}.{entry.id}_{tag}.{host}"


def delivery_headers(entry: Entry, mailbox: str) -> bytes:
    lines = [f"Return-Path: <{entry.sender}>", f"Delivered-To: {mailbox}"]
    lines += [f"{name}: {value}" for name, value in entry.added_headers]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def run(rt, entry: Entry, message: bytes, recovering: bool) -> None:
    data_dir, hostname = rt.config.data_dir, rt.config.hostname
    delivered = 0
    for rcpt in entry.open_recipients("local"):
        for mailbox in rcpt.mailboxes:
            fresh = deliver(maildir_path(data_dir, mailbox), [delivery_headers(entry, mailbox), message],
                            base=unique_base(entry, mailbox, hostname), folder=entry.folder,
                            check_cur=recovering)
            delivered += 1
            metrics.delivered("local", int(fresh))
            log.info("%s: to=<%s>, mailbox=%s%s, delay=%.3f, status=delivered%s, stage=local",
                     entry.id, rcpt.address, mailbox, f" folder={entry.folder}" if entry.folder else "",
                     time.time() - entry.received_at, "" if fresh else " (already there)")
        rcpt.status, rcpt.detail = "delivered", "delivered to Maildir"
    entry.record(rt.clock.now(), "local", "delivered", f"{delivered} mailbox(es)"
                 + (f", folder {entry.folder}" if entry.folder else ""))
