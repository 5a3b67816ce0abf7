"""Redis (``redis://``, ``rediss://``) through kombu's Redis transport.

Recovery: a message fetched by a consumer stays in kombu's ``unacked`` hash until
acked; a dead consumer's messages come back only after ``visibility_timeout``
(twice ``[pipeline] sweep_after``, at least 600 s), and one message per
whole-worker crash can be lost (celery issue 4354): the spool's sweeper
republishes such a message after ``sweep_after``, so it waits but is not lost.

Must not: count consumers (Redis has no such notion: ``None``).
"""

from __future__ import annotations

from typing import Any

from mailpipe.broker.networked import NetworkedBroker


class RedisBroker(NetworkedBroker):
    kind = "redis"
    recovery = ("unacknowledged messages return after the visibility timeout; the sweeper "
                "republishes anything lost with a crashed worker")

    def transport_options(self) -> dict[str, Any]:
        return {"visibility_timeout": max(600, int(self.config.pipeline.sweep_after) * 2)}

    def _count(self, channel: Any, queue: str) -> tuple[int, int | None]:
        # kombu's Redis channel sums the queue's priority lists (an absent list is empty)
        return channel._size(queue), None
