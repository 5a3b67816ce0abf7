"""The account directory's interface: per-address lookups, and the management calls of the CLI.

``Directory`` is what every server and stage types against (ingress policy,
IMAP, POP3, submission, the route and local stages). Each call answers for
one address or domain; no caller ever sees the whole directory, so an LDAP or
remote implementation can serve it. Implementations: ``sql.SqlDirectory`` (the
default, SQLite or PostgreSQL) and ``memory.MemoryDirectory`` (tests, pure
code); both pass ``tests/accounts/test_directory_contract.py``.

Contract for implementations:

- Addresses are compared in canonical form (``addresses.normalize``); a
  malformed address is simply "not found" (never an exception), and so is text
  that is not UTF-8.
- ``expand`` follows aliases and catch-alls (``@domain``) loop-safely up to
  ``MAX_ALIAS_DEPTH`` and returns the sorted local mailboxes ([] if none).
- ``authenticate`` returns the canonical address or None; it does equal work
  whether or not the user exists, and never logs or keeps a plaintext password.
- A change made through the management calls, in any process, is seen by every
  process within 2 seconds (caches are bounded and invalidated).

Must not: know about SMTP, IMAP or POP3 replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from mailpipe.core.errors import AccountError

MAX_ALIAS_DEPTH = 8
MAIL_HOST_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")   #: a mail host name (also a queue-name suffix)


def check_mail_host(name: str | None) -> str | None:
    """A mail host name as stored (lower case), None for the default one; AccountError if malformed."""
    if name is None or name == "":
        return None
    if not MAIL_HOST_RE.fullmatch(name.lower()):
        raise AccountError(f"mail host {name!r}: use lower-case letters, digits and '-' (at most 63)")
    return name.lower()


@dataclass(frozen=True)
class Mailbox:
    """Where a local user's mail lives."""

    address: str                  #: canonical address
    domain: str                   #: directory names, safe to join to a path
    user: str
    mail_host: str | None = None  #: the mail host that holds it (None: the default one, queue ``local``)
    quota_bytes: int = 0          #: 0: no quota


@dataclass(frozen=True)
class Removed:
    """What ``remove_domain`` removed from the directory (mailboxes on disk stay)."""

    domain: str
    users: tuple[str, ...]
    aliases: int


class Directory(Protocol):
    def is_local_domain(self, domain: str) -> bool: ...

    def expand(self, address: str) -> list[str]:
        """Local mailboxes an address delivers to (after aliases and catch-alls), [] if none."""

    def authenticate(self, address: str, password: str) -> str | None:
        """The canonical address if the password is right, else None."""

    def mailbox(self, address: str) -> Mailbox | None:
        """The mailbox of a local user (not an alias), None if there is no such user."""

    def owns_sender(self, user: str, sender: str) -> bool:
        """True if `sender` is `user`'s own address or an alias that delivers to it."""


class AccountAdmin(Directory, Protocol):
    """The management side used by ``mailpipe domain|user|alias``; every change is seen everywhere."""

    def add_domain(self, name: str) -> None: ...

    def domain_contents(self, name: str) -> Removed:
        """What ``remove_domain`` would remove (for a confirmation)."""

    def remove_domain(self, name: str) -> Removed: ...

    def domains(self) -> list[str]: ...

    def add_user(self, address: str, password: str, mail_host: str | None = None) -> str: ...

    def set_mail_host(self, address: str, mail_host: str | None) -> None:
        """Move a user to another mail host (None: the default one); its stored mail does not move."""

    def remove_user(self, address: str) -> None: ...

    def set_password(self, address: str, password: str) -> None: ...

    def users(self, domain: str | None = None) -> list[str]: ...

    def add_alias(self, source: str, target: str) -> None: ...

    def remove_alias(self, source: str, target: str) -> None: ...

    def aliases(self) -> list[tuple[str, str]]: ...

    def close(self) -> None: ...
