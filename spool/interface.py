"""The one Spool interface every caller types against, and the small types it speaks.

Owns: ``Spool`` (a ``typing.Protocol``), ``Claimed``, ``Listed`` (one row of a
listing, also what a corrupt entry looks like), ``Query`` (listing filters) and
``CorruptEntry``. Backends: ``spool.fs.FilesystemSpool`` today; a database
backend implements the same methods. ``spool.open_spool`` chooses one.

Guarantees every backend gives (proved by ``tests/spool``; docs/design.md):

- ``create`` is durable before it returns (a crash after it loses nothing);
- ``claim``/``lock`` are exclusive across processes and released when the
  holder dies (no lock outlives a ``kill -9``);
- ``save`` is atomic: a reader sees the old entry or the new one, never a mix;
- saving a ``done`` entry moves it out of the queue exactly once;
- ``due(now)`` yields deferred entries whose ``next_attempt`` has come, from an
  index by time (not by reading every entry);
- ``listing(query)`` streams rows (never the whole backlog in memory), and
  lists an unreadable entry as ``corrupt`` with its reason instead of hiding it.

Errors: an unknown ID raises ``FileNotFoundError`` (any backend: the callers'
one "no such message"); an entry that cannot be read raises ``CorruptEntry``
(a ``ValueError``). Nothing here hands out a file path: bodies come back as bytes.

Must not: do I/O (backends do), know about stages, brokers or protocols.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from mailpipe.core.errors import SpoolFull
from mailpipe.spool.model import Entry, State

CORRUPT = "corrupt"        #: the state a listing gives an entry it cannot read


class CorruptEntry(ValueError):
    """The stored entry cannot be read; ``reason`` says why in one line."""

    def __init__(self, queue_id: str, reason: str) -> None:
        super().__init__(f"{queue_id}: corrupt spool entry ({reason})")
        self.queue_id, self.reason = queue_id, reason


@dataclass
class Claimed:
    """A message locked by this process: its current entry and its raw content."""
    entry: Entry
    message: bytes


@dataclass
class Listed:
    """One queued message as a listing shows it (``state`` is a State value or ``corrupt``)."""
    id: str
    state: str
    stage: str = ""
    sender: str = ""
    recipients: list[str] = field(default_factory=list)   #: open recipients (all, once none is open)
    remote_domains: list[str] = field(default_factory=list)  #: domains of open remote recipients
    size: int = 0
    received_at: float = 0.0
    updated_at: float = 0.0
    next_attempt: float | None = None
    attempts: int = 0
    last_error: str = ""                                    #: for ``corrupt``: the reason
    bytes: int = 0                                          #: what the entry occupies in the store


def listed(entry: Entry, stored_bytes: int = 0) -> Listed:
    """The listing row of an entry."""
    open_ = entry.open_recipients()
    return Listed(entry.id, entry.state.value, entry.stage, entry.sender,
                  [r.address for r in open_] or [r.address for r in entry.recipients],
                  sorted({r.address.rpartition("@")[2].lower() for r in entry.open_recipients("remote")}),
                  entry.size, entry.received_at, entry.updated_at, entry.next_attempt, entry.attempts,
                  entry.last_error, stored_bytes)


@dataclass(frozen=True)
class Query:
    """Listing filters; every given one must match. Addresses and domains compare case-insensitively;
    ``domain`` matches a recipient's domain; ``received_before`` is an absolute time."""
    states: frozenset[str] | None = None
    sender: str | None = None
    recipient: str | None = None
    domain: str | None = None
    received_before: float | None = None

    def matches(self, row: Listed) -> bool:
        if self.states is not None and row.state not in self.states:
            return False
        if self.received_before is not None and row.received_at >= self.received_before:
            return False
        if self.sender is not None and row.sender.lower() != self.sender.lower():
            return False
        rcpts = [r.lower() for r in row.recipients]
        if self.recipient is not None and self.recipient.lower() not in rcpts:
            return False
        return self.domain is None or self.domain.lower().lstrip("@") in {r.rpartition("@")[2] for r in rcpts}


ALL = Query()


class Spool(Protocol):
    """What the pipeline, the ingress and the operator commands need of a spool."""

    def create(self, entry: Entry, chunks: list[bytes]) -> None: ...
    def create_many(self, messages: list[tuple[Entry, list[bytes]]]) -> list[SpoolFull | None]: ...
    def save(self, entry: Entry, *, durable: bool = True) -> None: ...
    def delete(self, queue_id: str) -> None: ...
    def load(self, queue_id: str) -> Entry: ...
    def message(self, queue_id: str) -> bytes: ...
    def lock(self, queue_id: str) -> AbstractContextManager[bool]: ...
    def claim(self, queue_id: str) -> AbstractContextManager[Claimed | None]: ...
    def ids(self) -> list[str]: ...
    def entries(self) -> Iterator[Entry]: ...
    def listing(self, query: Query = ALL) -> Iterator[Listed]: ...
    def due(self, now: float, limit: int = 1000) -> list[str]: ...
    def stale(self, updated_before: float) -> Iterator[str]: ...
    def reconcile(self) -> int: ...
    def move_aside(self, queue_id: str) -> str: ...
    def usage_bytes(self) -> int: ...
    def purge_done(self, older_than: float) -> int: ...
    def purge_orphans(self, older_than: float) -> int: ...


__all__ = ["ALL", "CORRUPT", "Claimed", "CorruptEntry", "Listed", "Query", "Spool", "State", "listed"]
