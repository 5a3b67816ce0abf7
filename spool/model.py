"""What the spool knows about one message: its envelope, state, stage and trace.

Owns: the ``Entry`` model (one per queue ID) and its small state vocabulary.
Must not: do I/O. Backends (``spool.fs``) persist entries; stages change them.

States:

- ``active``      in the pipeline; ``stage`` is the next stage to run
- ``deferred``    waiting for ``next_attempt`` (remote 4xx, filter daemon down)
- ``hold``        kept until an operator releases it (``queue release``)
- ``quarantine``  kept by a filter (virus, heavy spam) until released or deleted
- ``dead``        crashed its stage too often (worker crashes or unexpected errors); ``stage`` says where
- ``done``        every recipient delivered or failed; the body is gone, the trace stays
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, PrivateAttr


class State(StrEnum):
    ACTIVE = "active"
    DEFERRED = "deferred"
    HOLD = "hold"
    QUARANTINE = "quarantine"
    DEAD = "dead"
    DONE = "done"


WAITING_STATES = (State.DEFERRED, State.HOLD, State.QUARANTINE, State.DEAD)

RecipientStatus = Literal["pending", "delivered", "deferred", "failed", "discarded"]


class Recipient(BaseModel):
    address: str                                   #: as given in RCPT TO
    status: RecipientStatus = "pending"
    route: Literal["local", "remote"] | None = None
    mailboxes: list[str] = []                      #: local mailboxes after alias expansion
    detail: str = ""                               #: last reply or error, for operators
    attempts: int = 0

    @property
    def open(self) -> bool:
        return self.status in ("pending", "deferred")


class TraceEvent(BaseModel):
    at: float
    stage: str
    event: str                                     #: e.g. "received", "accept", "quarantine", "delivered"
    detail: str = ""
    ms: float | None = None                        #: how long the stage took


class Entry(BaseModel):
    id: str
    sender: str                                    #: "" for the null sender
    recipients: list[Recipient]
    size: int
    received_at: float
    client_ip: str | None = None
    helo: str | None = None
    auth_user: str | None = None
    state: State = State.ACTIVE
    stage: str = "smtp_in"
    updated_at: float = 0.0
    attempts: int = 0                              #: delivery attempts (deferrals)
    next_attempt: float | None = None
    last_error: str = ""
    redeliveries: int = 0                          #: tasks for this message redelivered after a crash
    failures: int = 0                              #: unexpected errors raised by its stages (each deferred)
    added_headers: list[tuple[str, str]] = []      #: prepended at delivery (filters' headers)
    folder: str | None = None                      #: deliver into this folder (e.g. "Junk")
    is_bounce: bool = False                        #: a DSN we generated (never bounced again)
    trace: list[TraceEvent] = []
    _stored_state: State | None = PrivateAttr(default=None)   #: state as read from the spool (None: not read)

    def record(self, at: float, stage: str, event: str, detail: str = "", ms: float | None = None) -> None:
        self.trace.append(TraceEvent(at=at, stage=stage, event=event, detail=detail, ms=ms))

    def open_recipients(self, route: str | None = None) -> list[Recipient]:
        return [r for r in self.recipients if r.open and (route is None or r.route == route)]

    @property
    def finished(self) -> bool:
        return not any(r.open for r in self.recipients)
