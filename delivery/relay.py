"""The relay facade: one message, many recipients, per-recipient outcomes and log lines.

Owns: loop detection (more than ``max_received_headers`` Received headers ->
every recipient failed 5.4.6), grouping recipients by domain, resolving each
domain (``delivery.mx``), honouring per-destination down marks, concurrency
(no free connection slot: held back at once, never a thread that sleeps)
and rate limits (``delivery.retry.DestinationState``), delivering with
``delivery.smtp_client`` (one transaction per destination, pooled sessions),
marking a destination down when every host refused the connection, and the
log line per recipient::

    <ID>: to=<x@y>, relay=mx.host[1.2.3.4]:25, delay=1.2, attempts=1, status=sent (250 2.0.0 Ok)

Must not: touch the spool, schedule retries, or send DSNs; the ``remote``
stage task (workers/) does that with the results returned here.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from mailpipe.core.clock import Clock, SystemClock
from mailpipe.delivery.errors import PermanentDnsError, TemporaryDnsError
from mailpipe.delivery.mx import MxResolver
from mailpipe.delivery.result import RecipientResult
from mailpipe.delivery.retry import DestinationState
from mailpipe.delivery.smtp_client import ConnectionPool, deliver_report
from mailpipe.core.config import Config, DnsConfig, RelayConfig

log = logging.getLogger("mailpipe.relay")

LOG_STATUS = {"sent": "sent", "deferred": "deferred", "failed": "bounced"}


def count_received(message: bytes) -> int:
    """Received header fields in the header section of ``message`` (up to its first empty
    line, LF or CRLF), without copying the body."""
    ends = [i for i in (message.find(b"\n\n"), message.find(b"\n\r\n")) if i >= 0]
    head = b"\n" + (message[:min(ends)] if ends else message).lower()
    if head.startswith((b"\n\n", b"\n\r\n")):      # the message starts with the empty line
        return 0
    return head.count(b"\nreceived:")


def group_by_domain(recipients: list[str]) -> dict[str, list[str]]:
    """Recipients by lower-cased domain, in first-seen order; duplicates dropped."""
    groups: dict[str, list[str]] = {}
    for rcpt in dict.fromkeys(recipients):
        groups.setdefault(rcpt.rpartition("@")[2].rstrip(".").lower(), []).append(rcpt)
    return groups


class Relay:
    """Deliver messages to remote domains; one instance per worker process (thread-safe)."""

    def __init__(self, cfg_relay: RelayConfig, cfg_dns: DnsConfig, hostname: str, *,
                 resolver: MxResolver | None = None, state: DestinationState | None = None,
                 pool: ConnectionPool | None = None, clock: Clock | None = None) -> None:
        self.cfg, self.hostname = cfg_relay, hostname
        self.clock = clock or SystemClock()
        self.resolver = resolver or MxResolver(cfg_dns, cfg_relay, self.clock)
        self.state = state or DestinationState(cfg_relay, self.clock)
        self.pool = pool if pool is not None else ConnectionPool(cfg_relay, self.clock)
        self._slots = threading.Condition()

    @classmethod
    def from_config(cls, cfg: Config, **kwargs: Any) -> "Relay":
        """Build from the whole ``core.config.Config``."""
        return cls(cfg.relay, cfg.dns, cfg.hostname, **kwargs)

    def close(self) -> None:
        self.pool.close_all()

    def deliver_message(self, sender: str, recipients: list[str], message: bytes, queue_id: str, *,
                        arrival: float | None = None, attempts: int = 1,
                        force: bool = False) -> list[RecipientResult]:
        """Try every recipient once; returns one result per distinct recipient, in order.

        ``force`` (an operator's ``queue retry``) ignores and clears down marks and the rate limit.
        """
        start = self.clock.now()
        received = count_received(message)
        if not self.cfg.enabled:
            text = "4.3.2 relaying is disabled by configuration ([relay] enabled = false)"
            results = [RecipientResult(r, "deferred", text) for r in dict.fromkeys(recipients)]
        elif received > self.cfg.max_received_headers:
            text = f"5.4.6 too many Received headers ({received}): mail forwarding loop"
            results = [RecipientResult(r, "failed", text) for r in dict.fromkeys(recipients)]
        else:
            results = []
            for domain, rcpts in group_by_domain(recipients).items():
                results += self._deliver_domain(domain, sender, rcpts, message, force)
        for result in results:
            self._log(queue_id, result, arrival if arrival is not None else start, attempts)
        return results

    def _deliver_domain(self, domain: str, sender: str, rcpts: list[str],
                        message: bytes, force: bool = False) -> list[RecipientResult]:
        if not domain:
            return [RecipientResult(r, "failed", "5.1.3 bad recipient address syntax") for r in rcpts]
        try:
            dest = self.resolver.resolve(domain)
        except PermanentDnsError as exc:
            return [RecipientResult(r, "failed", f"{exc.status} {exc}") for r in rcpts]
        except TemporaryDnsError as exc:
            return [RecipientResult(r, "deferred", f"{exc.status} {exc}") for r in rcpts]
        if force:
            self.state.clear(domain)
        held = "" if force else self._held(domain)
        if held:
            return [RecipientResult(r, "deferred", held) for r in rcpts]
        if not self._acquire(domain):
            text = f"4.4.5 {domain}: all {self.cfg.max_per_destination} connection slots busy"
            return [RecipientResult(r, "deferred", text) for r in rcpts]
        try:
            report = deliver_report(dest, sender, rcpts, message, hostname=self.hostname,
                                    cfg=self.cfg, pool=self.pool)
        finally:
            self._release(domain)
        if report.unreachable:
            self.state.mark_down(domain, report.results[0].reply)
        if any(r.status == "sent" for r in report.results):
            self.state.record_sent(domain)
        return report.results

    def _held(self, domain: str) -> str:
        """A deferral reply when ``domain`` is marked down or over its rate, else ""."""
        if self.state.down_until(domain) is not None:
            return f"{self.state.down_reason(domain)} (destination {domain} marked down; not tried)"
        wait = self.state.rate_delay(domain)
        if wait > 0:
            return f"4.7.0 rate limit for {domain} reached; next message in {wait:.0f} s"
        return ""

    def _acquire(self, domain: str) -> bool:
        """A connection slot for ``domain``. With ``concurrency_wait = 0`` (the default) the
        calling worker thread never waits: no free slot -> False, and the message is held
        ("4.4.5 ... slots busy") and re-queued through the spool, so the thread serves other mail."""
        if self.cfg.concurrency_wait <= 0:
            return self.state.acquire(domain)
        deadline = time.monotonic() + self.cfg.concurrency_wait
        with self._slots:
            while not self.state.acquire(domain):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._slots.wait(remaining)
        return True

    def _release(self, domain: str) -> None:
        with self._slots:
            self.state.release(domain)
            self._slots.notify_all()

    def _log(self, queue_id: str, result: RecipientResult, arrival: float, attempts: int) -> None:
        delay = max(0.0, self.clock.now() - arrival)
        log.info("%s: to=<%s>, relay=%s, delay=%.2f, attempts=%d, status=%s (%s)", queue_id,
                 result.recipient, result.relay, delay, attempts, LOG_STATUS[result.status], result.reply)
