"""Where every message is: broker queue depths per stage and spool counts per state.

Broker depths come from the configured Broker (``mailpipe.broker``): its own
folders for the embedded broker, a passive declare (RabbitMQ) or a list length
(Redis) for the others, which creates nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from mailpipe.broker import QueueDepth, open_broker
from mailpipe.core.config import Config
from mailpipe.spool.model import State

__all__ = ["QueueDepth", "snapshot", "spool_counts", "stage_depths"]


def stage_depths(config: Config) -> list[QueueDepth]:
    broker = open_broker(config)
    try:
        return broker.depths()
    finally:
        broker.close()


def spool_counts(spool) -> dict[str, int]:
    counts = {state.value: 0 for state in State if state != State.DONE}
    for entry in spool.entries():
        counts[entry.state.value] = counts.get(entry.state.value, 0) + 1
    return counts


def snapshot(config: Config, spool) -> dict:
    return {"time": time.time(),
            "queues": [asdict(d) for d in stage_depths(config)],
            "spool": spool_counts(spool)}
