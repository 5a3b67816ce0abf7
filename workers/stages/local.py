"""Local delivery stage: each local recipient's mailboxes get one copy, exactly once.

The Maildir file name is derived from the queue ID and the mailbox, so a
redelivered task finds what it already delivered (``mailstore.maildir.deliver``
returns False) instead of writing a second copy. After an earlier failed try
(a full disk defers the message: ``workers.deferral.storage_failure``) ``cur/``
is checked too, since a reader may have moved a copy that did get written.
A write that fails leaves no partial file behind in the Maildir's ``tmp/``.

Mail hosts: the stage runs as ``local`` (the default mail host) or ``local.<host>``
(``broker.topology.local_stage``) and delivers only the mailboxes the directory
places on that host (``Mailbox.mail_host``; a user no longer in the directory
counts as the default host's). A recipient whose mailboxes (an alias) span hosts
keeps the others' in ``mailboxes`` and stays open until the last host delivered
them; ``next_local_stage`` names the mail host that has work left, so a message
with recipients on two hosts is delivered once on each, one host after the other.

Must not: decide what a failure means (the pipeline defers or dead-letters).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING

import os
from pathlib import Path

from mailpipe.broker.topology import local_stage, mail_host_of
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


def host_of(rt: Runtime, mailbox: str) -> str | None:
    """The mail host of a local mailbox (None: the default one, also for a user gone since routing)."""
    found = rt.directory.mailbox(mailbox)
    return found.mail_host if found is not None else None


def pending_hosts(rt: Runtime, entry: Entry) -> list[str | None]:
    """The mail hosts with mailboxes still to deliver, in recipient order, each once."""
    hosts: list[str | None] = []
    for rcpt in entry.open_recipients("local"):
        for mailbox in rcpt.mailboxes or [rcpt.address]:
            host = host_of(rt, mailbox) if rcpt.mailboxes else None
            if host not in hosts:
                hosts.append(host)
    return hosts


def next_local_stage(rt: Runtime, entry: Entry) -> str | None:
    """The local stage of the first mail host with work left, None when every local mailbox is done."""
    hosts = pending_hosts(rt, entry)
    return local_stage(hosts[0]) if hosts else None


def run(rt: Runtime, entry: Entry, message: bytes, recovering: bool) -> None:
    data_dir, hostname = rt.config.data_dir, rt.config.hostname
    check_cur = recovering or entry.attempts > 0
    here = mail_host_of(entry.stage)
    delivered = 0
    for rcpt in entry.open_recipients("local"):
        mine = [m for m in rcpt.mailboxes if host_of(rt, m) == here]
        elsewhere = [m for m in rcpt.mailboxes if m not in mine]
        if rcpt.mailboxes and not mine:
            continue                                   # all on other mail hosts
        for mailbox in mine:
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
            log.info("%s: to=<%s>, mailbox=%s%s, delay=%.3f, status=delivered%s, stage=%s",
                     entry.id, rcpt.address, mailbox, f" folder={entry.folder}" if entry.folder else "",
                     time.time() - entry.received_at, "" if fresh else " (already there)", entry.stage)
        if elsewhere:                                  # the other mail hosts deliver the rest
            rcpt.mailboxes = elsewhere
            rcpt.detail = f"delivered to {len(mine)} mailbox(es) on {here or 'the default mail host'}"
            continue
        rcpt.status, rcpt.detail = "delivered", "delivered to Maildir"
    where = f" on mail host {here}" if here else ""
    entry.record(rt.clock.now(), entry.stage, "delivered", f"{delivered} mailbox(es){where}"
                 + (f", folder {entry.folder}" if entry.folder else ""))


def _drop_partial(root: Path, folder: str | None, base: str, chunks: list[bytes]) -> None:
    """Remove the half-written ``tmp/`` file of a failed delivery (it holds the space we lack)."""
    name = delivered_name(base, sum(len(c) for c in chunks))
    try:
        os.unlink(folder_path(root, folder) / "tmp" / name)
    except OSError:
        pass
