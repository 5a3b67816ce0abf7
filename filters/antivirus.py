"""The anti-virus filter: whole raw message to clamd (INSTREAM), verdict out.

Owns: mapping a clamd answer to a ``Verdict`` - clean -> ACCEPT with an
``X-Virus-Scanned`` header; infected -> QUARANTINE (or DISCARD, as
configured) naming the signature, never a bounce; clamd unavailable ->
TEMPFAIL (fail closed, DESIGN guarantee 7) unless the operator set
``on_error = "accept"``, then ACCEPT with ``X-Virus-Status: unscanned``.

Must not: do I/O itself (the client is injected), retry, sleep or touch the spool.
"""

from __future__ import annotations

from typing import Literal, Protocol

from mailpipe.core.errors import FilterUnavailable
from mailpipe.filters.clamd_client import ClamdClient, ScanResult
from mailpipe.filters.verdict import Action, FilterInput, Verdict
from mailpipe.core.config import AntivirusConfig

SCANNED_HEADER = "X-Virus-Scanned"
STATUS_HEADER = "X-Virus-Status"


class Scanner(Protocol):
    def scan(self, raw: bytes) -> ScanResult: ...


class AntivirusFilter:
    name = "antivirus"

    def __init__(self, client: Scanner, action: Literal["quarantine", "discard"],
                 on_error: Literal["defer", "accept"], retry_after: float, hostname: str = "localhost") -> None:
        self.client = client
        self.action = Action(action)
        self.on_error = on_error
        self.retry_after = retry_after
        self.hostname = hostname

    def check(self, msg: FilterInput) -> Verdict:
        try:
            result = self.client.scan(msg.raw)
        except FilterUnavailable as exc:
            return self._unavailable(str(exc))
        if result.infected:
            return Verdict(self.action, self.name, reason="virus found",
                           headers=((STATUS_HEADER, f"infected ({result.signature})"),),
                           rules=(result.signature or "unknown",))
        return Verdict(Action.ACCEPT, self.name, reason="clean",
                       headers=((SCANNED_HEADER, f"ClamAV on {self.hostname}"),))

    def _unavailable(self, detail: str) -> Verdict:
        if self.on_error == "accept":
            return Verdict(Action.ACCEPT, self.name, reason=f"unscanned: {detail}",
                           headers=((STATUS_HEADER, f"unscanned (clamd unavailable) on {self.hostname}"),))
        return Verdict(Action.TEMPFAIL, self.name, reason=detail, retry_after=self.retry_after)


def from_config(cfg: AntivirusConfig, hostname: str) -> AntivirusFilter | None:
    """The configured filter, or None when ``[antivirus] clamd`` is not set."""
    if cfg.clamd is None:
        return None
    client = ClamdClient(cfg.clamd, timeout=cfg.timeout)
    return AntivirusFilter(client, cfg.action, cfg.on_error, cfg.retry_after, hostname)
