"""What the sans-I/O POP3 core asks its I/O shell to do, as frozen dataclasses.

The core returns a list of these for every input; the shell performs them in
order and feeds results back (``login_result``, ``tls_started``,
``commit_result``). Message numbers here are 1-based session numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class CheckLogin:
    """Check the credentials, then lock and scan the maildrop. Never log ``password``."""

    user: str
    password: str = ""

    def __repr__(self) -> str:          # keeps the password out of logs and tracebacks
        return f"CheckLogin(user={self.user!r}, password=<hidden>)"


@dataclass(frozen=True)
class SendMessage:
    """Send ``+OK``, the message (dot-stuffed), then ``.``; TOP when ``top_lines`` is set."""

    number: int
    top_lines: int | None = None


@dataclass(frozen=True)
class StartTls:
    """The ``+OK`` has been queued; upgrade the connection now, discarding buffered input."""


@dataclass(frozen=True)
class Commit:
    """UPDATE state: remove these messages (1-based numbers) from the maildrop."""

    deleted: tuple[int, ...]


@dataclass(frozen=True)
class Close:
    """Flush what was sent and close the connection."""


Effect = Send | CheckLogin | SendMessage | StartTls | Commit | Close


class LoginOutcome(enum.Enum):
    OK = "ok"
    BAD_CREDENTIALS = "bad-credentials"
    LOCKED_OUT = "locked-out"       # too many failures from this IP
    IN_USE = "in-use"               # another POP3 session holds the maildrop
    UNAVAILABLE = "unavailable"     # directory or file system error


@dataclass(frozen=True)
class Listing:
    """The maildrop as the session sees it: sizes and UIDLs, index 0 = message 1."""

    sizes: tuple[int, ...]
    uidls: tuple[str, ...]
