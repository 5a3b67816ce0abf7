"""When to try a deferred message again, and which destinations to leave alone for now.

Owns, as pure code with the clock passed in, the ONE retry-delay policy of
mailpipe: the ``[relay]`` schedule. Every deferral uses it (remote 4xx, clamd
or spamd down, a full or failing disk, any ``TransientError`` of a stage):

* ``backoff(attempts, cfg, first)``: after the Nth failed attempt wait
  ``first * 2**(N-1)`` capped at ``retry_max``; ``first`` is ``retry_first``
  unless the deferring part has its own first step (``[antivirus]
  retry_after``, ``[spam] retry_after``).
* ``retry_at(attempts, now, cfg, first)``: the absolute time of the next try
  for a stage that cannot give up (filters, local delivery: no DSN there).
* ``next_attempt(attempts, first_seen, now, cfg)``: the same backoff, but never
  scheduled past ``first_seen + max_lifetime`` (so the last try happens at
  expiry); ``None`` once the lifetime is over (give up, DSN). Remote stage.
* ``held_retry_at(wait, now, cfg)``: a message held back by our OWN limits
  (connection slots busy, rate limit): tried again soon, with no backoff and
  no attempt counted, and never by a worker thread that sleeps.
* ``delay_warning_due(...)``: whether a "delayed" DSN should go out now.
* ``DestinationState``: per-destination down marks (a destination that refused
  connections is left alone for the minimum backoff), a concurrency limit, and
  an optional messages-per-minute rate limit.

Must not: sleep, read the wall clock itself, touch the spool or the broker.
The scheduler (workers/) stores the result in the spool; never Celery ETA.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from mailpipe.core.clock import Clock, SystemClock
from mailpipe.core.config import RelayConfig

RATE_WINDOW = 60.0   #: seconds over which rate_per_destination counts messages
HELD_MIN = 1.0       #: shortest wait (s) of a message held back by our own limits
HELD_MAX = 60.0      #: longest wait (s) of a message held back by our own limits


def backoff(attempts: int, cfg: RelayConfig, first: float | None = None) -> float:
    """Seconds to wait after ``attempts`` failed attempts (attempts >= 1)."""
    step = cfg.retry_first if first is None else first
    exponent = max(attempts, 1) - 1
    if step * 2.0 ** min(exponent, 64) >= cfg.retry_max:
        return cfg.retry_max
    return step * 2.0 ** exponent


def retry_at(attempts: int, now: float, cfg: RelayConfig, first: float | None = None) -> float:
    """Absolute time of the next try after ``attempts`` failures, for a stage that never gives up."""
    return now + backoff(attempts, cfg, first)


def held_retry_at(wait: float, now: float, cfg: RelayConfig) -> float:
    """Next try of a message our own limits held back; ``wait`` = the limit's own estimate
    (0 = unknown, e.g. slots busy: ``slot_retry``)."""
    wait = wait or cfg.slot_retry
    return now + max(HELD_MIN, min(wait, cfg.retry_first, HELD_MAX))


def next_attempt(attempts: int, first_seen: float, now: float, cfg: RelayConfig) -> float | None:
    """Absolute time of the next try after ``attempts`` failures, or None to give up."""
    expiry = first_seen + cfg.max_lifetime
    if now >= expiry:
        return None
    return min(now + backoff(attempts, cfg), expiry)


def delay_warning_due(first_seen: float, now: float, already_warned: bool, cfg: RelayConfig) -> bool:
    """True when a delay DSN should be sent now (once per message; off when delay_warning is None)."""
    if cfg.delay_warning is None or already_warned:
        return False
    return now - first_seen >= cfg.delay_warning


@dataclass
class _Dest:
    down_until: float = 0.0
    down_reason: str = ""
    active: int = 0
    sent: deque[float] = field(default_factory=deque)


class DestinationState:
    """Per-destination bookkeeping; thread-safe, time from the injected clock only."""

    def __init__(self, cfg: RelayConfig, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self._dests: dict[str, _Dest] = {}
        self._lock = threading.Lock()

    def _get(self, dest: str) -> _Dest:
        return self._dests.setdefault(dest.lower(), _Dest())

    # -- down marks ------------------------------------------------------
    def mark_down(self, dest: str, reason: str = "") -> float:
        """The destination refused every connection: leave it alone for the minimum backoff."""
        with self._lock:
            state = self._get(dest)
            state.down_until = self.clock.now() + self.cfg.retry_first
            state.down_reason = reason
            return state.down_until

    def down_until(self, dest: str) -> float | None:
        with self._lock:
            until = self._get(dest).down_until
        return until if until > self.clock.now() else None

    def down_reason(self, dest: str) -> str:
        """Why ``dest`` was marked down (the last connection error), "" if it is not."""
        with self._lock:
            state = self._get(dest)
            return state.down_reason if state.down_until > self.clock.now() else ""

    def clear(self, dest: str | None = None) -> None:
        """Forget down marks (``queue retry``): one destination or all."""
        with self._lock:
            targets = self._dests.values() if dest is None else [self._get(dest)]
            for state in targets:
                state.down_until = 0.0

    # -- concurrency -----------------------------------------------------
    def acquire(self, dest: str) -> bool:
        """Take a connection slot; False when max_per_destination are in use."""
        with self._lock:
            state = self._get(dest)
            if state.active >= self.cfg.max_per_destination:
                return False
            state.active += 1
            return True

    def release(self, dest: str) -> None:
        with self._lock:
            state = self._get(dest)
            state.active = max(0, state.active - 1)

    def active(self, dest: str) -> int:
        with self._lock:
            return self._get(dest).active

    # -- rate ------------------------------------------------------------
    def rate_delay(self, dest: str) -> float:
        """Seconds until one more message may go to ``dest`` (0 = now; no limit configured = 0)."""
        limit = self.cfg.rate_per_destination
        if not limit:
            return 0.0
        now = self.clock.now()
        with self._lock:
            sent = self._get(dest).sent
            while sent and sent[0] <= now - RATE_WINDOW:
                sent.popleft()
            return 0.0 if len(sent) < limit else sent[0] + RATE_WINDOW - now

    def record_sent(self, dest: str) -> None:
        """Count one message towards the rate limit."""
        if not self.cfg.rate_per_destination:
            return
        with self._lock:
            self._get(dest).sent.append(self.clock.now())
