"""First stage: loop detection, then the message enters the filters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailpipe.delivery.relay import count_received
from mailpipe.spool.model import Entry
from mailpipe.workers.bounce import bounce_local_failures

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime


def run(rt: Runtime, entry: Entry, message: bytes, recovering: bool) -> None:
    hops = count_received(message)
    limit = rt.config.relay.max_received_headers
    if hops > limit:
        failed = entry.open_recipients()
        for rcpt in failed:
            rcpt.status = "failed"
            rcpt.detail = f"554 5.4.6 mail loop: {hops} Received headers"
        entry.record(rt.clock.now(), "smtp_in", "loop", f"{hops} Received headers > {limit}")
        bounce_local_failures(rt, entry, message, failed)
        return
    entry.record(rt.clock.now(), "smtp_in", "accepted", f"{hops} hops")
