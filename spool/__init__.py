"""The spool: the source of truth for every message until it is delivered.

``Spool`` (``spool.interface``) is the one interface callers type against;
``open_spool(config)`` chooses the backend once, from ``spool_url``:

- ``""`` (default): the filesystem spool in ``<data_dir>/spool`` (``spool.fs``);
- ``file:///path``: the filesystem spool at ``/path``;
- ``postgresql+psycopg://user@host/db``: the PostgreSQL spool (``spool.pg``), shared
  by every host that reaches the database; its schema is migrated when it opens.

Must not: know about stages, brokers or protocols.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mailpipe.core.errors import ConfigError
from mailpipe.spool.interface import ALL, CORRUPT, Claimed, CorruptEntry, Listed, Query, Spool

if TYPE_CHECKING:
    from mailpipe.core.config import Config


def open_spool(config: Config) -> Spool:
    """The configured spool (ConfigError for a ``spool_url`` no backend serves)."""
    return spool_at(config.spool_url, config.data_dir)


def spool_at(url: str, data_dir: Path | str = ".") -> Spool:
    from mailpipe.spool.fs import FilesystemSpool
    if not url:
        return FilesystemSpool(Path(data_dir) / "spool")
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.path:
        return FilesystemSpool(Path(unquote(parts.path)))
    if parts.scheme in ("postgresql", "postgresql+psycopg"):
        from mailpipe.spool.pg import PostgresSpool
        return PostgresSpool(url)
    raise ConfigError(f"spool_url = {_hidden(url)!r}: not a spool this mailpipe knows "
                      "(use \"\", file:///path or postgresql+psycopg://user@host/db)")


def _hidden(url: str) -> str:
    """The URL without a password, for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


__all__ = ["ALL", "CORRUPT", "Claimed", "CorruptEntry", "Listed", "Query", "Spool", "open_spool", "spool_at"]
