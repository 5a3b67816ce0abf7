"""Local delivery stage: each local recipient's mailboxes get one copy, exactly once.

The Maildir file name is derived from the queue ID and the mailbox, so a
redelivered task finds what it already delivered (``mailstore.maildir.deliver``
returns False) instead of writing a second copy. After an earlier failed try
(a full disk defers the message: ``workers.deferral.storage_failure``) ``cur/``
is checked too, since a reader may have moved a copy that did get written.
A write that fails leaves no partial file behind in the Maildir's ``tmp/``.

Must not: decide what a failure means (the pipeline defers or dead-letters).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING

import os
from pathlib import Path

from mailpipe.core import metrics
from mailpipe.mailstore.maildir import deliver, delivered_name, folder_path, maildir_path
from mailpipe.spool.model import Entry

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

log = logging.getLogger("mailpipe.local")


def unique_base(entry: Entry, mailbox: str, hostname: str) -> str:
    tag = hashlib.sha1(mailbox.encode()).hexdigest()[:8]
    host = "".join(c for c in hostname if c.isalnum() or c in "-_") or "localhost"
    return f"{int(entry.received_at)}.{entry.id}_{tag}.{host}"


def delivery_headers(entry: Entry, mailbox: str) -> bytes:
    lines = [f"Return-Path: <{entry.sender}>", f"Delivered-To: {mailbox}"]
    lines += [f"{name}: {value}" for name, value in entry.added_headers]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


def run(rt: Runtime, entry: Entry, message: bytes, recovering: bool) -> None:
    data_dir, hostname = rt.config.data_dir, rt.config.hostname
    check_cur = recovering or entry.attempts > 0
    delivered = 0
    for rcpt in entry.open_recipients("local"):
        for mailbox in rcpt.mailboxes:
            chunks = [delivery_headers(entry, mailbox), message]
            base = unique_base(entry, mailbox, hostname)
            root = maildir_path(data_dir, mailbox)
            try:
                fresh = deliver(root, chunks, base=base, folder=entry.folder, check_cur=check_cur)
            except OSError:
                _drop_partial(root, entry.folder, base, chunks)
                raise
            delivered += 1
            metrics.delivered("local", int(fresh))
            log.info("%s: to=<%s>, mailbox=%s%s, delay=%.3f, status=delivered%s, stage=local",
                     entry.id, rcpt.address, mailbox, f" folder={entry.folder}" if entry.folder else "",
                     time.time() - entry.received_at, "" if fresh else " (already there)")
        rcpt.status, rcpt.detail = "delivered", "delivered to Maildir"
    entry.record(rt.clock.now(), "local", "delivered", f"{delivered} mailbox(es)"
                 + (f", folder {entry.folder}" if entry.folder else ""))


def _drop_partial(root: Path, folder: str | None, base: str, chunks: list[bytes]) -> None:
    """Remove the half-written ``tmp/`` file of a failed delivery (it holds the space we lack)."""
    name = delivered_name(base, sum(len(c) for c in chunks))
    try:
        os.unlink(folder_path(root, folder) / "tmp" / name)
    except OSError:
        pass
