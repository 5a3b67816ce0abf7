"""The account directory: local domains, users with argon2 password hashes, aliases.

Callers type against ``Directory`` (per-address lookups: local domain, expand
a recipient, authenticate, mailbox, sender ownership) or, for the CLI,
``AccountAdmin``; ``open_directory`` is the one place that picks and builds an
implementation. Modules:

- ``interface``  the Protocols and their contract, ``Mailbox``, ``Removed``
- ``addresses``  normalisation and safe mailbox names (pure)
- ``expand``     alias / catch-all expansion over lookup callbacks (pure)
- ``cache``      bounded LRU+TTL caches and the change watch
- ``schema``     SQL tables, including the change generation
- ``sql``        the SQL implementation (SQLite, PostgreSQL)
- ``memory``     an in-memory implementation for tests and pure code

Must not: know about SMTP/IMAP/POP3. Protocol servers call the lookups and map
the result to their own replies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailpipe.mailstore.directory.addresses import DOMAIN_RE, LOCAL_PART_RE, mailbox_name, normalize, split_address
from mailpipe.mailstore.directory.interface import MAX_ALIAS_DEPTH, AccountAdmin, Directory, Mailbox, Removed
from mailpipe.mailstore.directory.memory import MemoryDirectory

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from mailpipe.core.clock import Clock


def open_directory(url: str, *, hasher: "PasswordHasher | None" = None, clock: "Clock | None" = None,
                   check_interval: float | None = None, cache_entries: int | None = None) -> AccountAdmin:
    """The directory at ``url`` (an SQLAlchemy URL: ``sqlite:///...``, ``postgresql+psycopg://...``)."""
    from mailpipe.mailstore.directory.sql import CACHE_ENTRIES, CHECK_INTERVAL, SqlDirectory
    return SqlDirectory(url, hasher=hasher, clock=clock, cache_entries=cache_entries or CACHE_ENTRIES,
                        check_interval=CHECK_INTERVAL if check_interval is None else check_interval)


__all__ = ["DOMAIN_RE", "LOCAL_PART_RE", "MAX_ALIAS_DEPTH", "AccountAdmin", "Directory", "Mailbox",
           "MemoryDirectory", "Removed", "mailbox_name", "normalize", "open_directory", "split_address"]
