"""Route stage: each open recipient is local (expanded through aliases) or remote."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailpipe.core.errors import AccountError
from mailpipe.spool.model import Entry
from mailpipe.workers.bounce import bounce_local_failures

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

log = logging.getLogger("mailpipe.route")


def run(rt: Runtime, entry: Entry, message: bytes, recovering: bool) -> None:
    directory = rt.directory
    local = remote = 0
    failed = []
    for rcpt in entry.open_recipients():
        if rcpt.route is not None:
            continue
        try:
            domain = rcpt.address.rpartition("@")[2]
            if directory.is_local_domain(domain):
                rcpt.route = "local"
                rcpt.mailboxes = directory.expand(rcpt.address)
                if not rcpt.mailboxes:
                    rcpt.status, rcpt.detail = "failed", "550 5.1.1 no such user"
                    failed.append(rcpt)
                local += 1
            else:
                rcpt.route = "remote"
                remote += 1
        except AccountError:
            rcpt.status, rcpt.detail = "failed", "553 5.1.3 bad address"
            failed.append(rcpt)
    entry.record(rt.clock.now(), "route", "routed", f"local={local}, remote={remote}")
    if failed:
        bounce_local_failures(rt, entry, message, failed)
