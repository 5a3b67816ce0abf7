"""Remote stage: relay to other domains' servers.

Until the relay is wired in (``delivery/``), remote recipients wait visibly in
the spool as deferred, with the reason on the trace and in ``queue list``.
"""

from __future__ import annotations

import logging

from spool.model import Entry
from workers.deferral import defer

log = logging.getLogger("mailpipe.remote")


def run(rt, entry: Entry, message: bytes, recovering: bool) -> None:
    for rcpt in entry.open_recipients("remote"):
        rcpt.status, rcpt.detail = "deferred", "relay not available"
    defer(rt, entry, "remote", "relay not available", retry_after=rt.config.relay.retry_first)
