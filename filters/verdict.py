"""The one verdict type every filter returns, and the input every filter reads.

A filter is pure: ``check(FilterInput) -> Verdict``. Clients for daemons
(clamd, spamd) are injected into the filter object; the stage task in
``workers/stages`` records the verdict on the message's trace and acts on it.

Actions, in the order of how final they are:

- ``accept``      pass on (for rules: stop evaluating further rules)
- ``tag``         pass on, adding ``headers``
- ``add_header``  pass on, adding ``headers`` (rules; evaluation continues)
- ``junk``        deliver into the recipients' Junk folder
- ``redirect``    replace the recipients with ``redirect_to``
- ``hold``        keep in the spool until an operator releases it
- ``quarantine``  keep in the spool as quarantined (virus, heavy spam)
- ``discard``     drop silently (logged, never bounced)
- ``reject``      refuse: 5xx during the SMTP dialogue; after acceptance it is
                  treated as ``discard`` (no backscatter; DESIGN guarantee 5)
- ``tempfail``    the filter could not decide (daemon down): defer and retry
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from enum import StrEnum


class Action(StrEnum):
    ACCEPT = "accept"
    TAG = "tag"
    ADD_HEADER = "add_header"
    JUNK = "junk"
    REDIRECT = "redirect"
    HOLD = "hold"
    QUARANTINE = "quarantine"
    DISCARD = "discard"
    REJECT = "reject"
    TEMPFAIL = "tempfail"


#: actions after which the message does not continue to the next stage as is
STOPPING = frozenset({Action.HOLD, Action.QUARANTINE, Action.DISCARD, Action.REJECT, Action.TEMPFAIL})


@dataclass(frozen=True)
class Verdict:
    action: Action
    filter: str
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()     #: header (name, value) pairs to add
    redirect_to: tuple[str, ...] = ()
    score: float | None = None
    retry_after: float | None = None               #: for tempfail: seconds until the next try
    rules: tuple[str, ...] = ()                    #: names of matched rules / signatures

    @property
    def stops(self) -> bool:
        return self.action in STOPPING


@dataclass(frozen=True)
class FilterInput:
    """What a filter may look at: the raw message and the envelope, nothing else."""

    raw: bytes
    sender: str
    recipients: tuple[str, ...]
    client_ip: str | None = None
    helo: str | None = None
    auth_user: str | None = None
    queue_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.raw)


class Filter(Protocol):
    """What the filter stages call: a name and a pure ``check`` (one verdict type for all)."""

    name: str

    def check(self, msg: FilterInput) -> Verdict: ...
