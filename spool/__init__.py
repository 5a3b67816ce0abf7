"""The spool: the source of truth for every message until it is delivered.

``Spool`` (``spool.interface``) is the one interface callers type against;
``open_spool(config)`` chooses the backend once, from ``spool_url``:

- ``""`` (default): the filesystem spool in ``<data_dir>/spool`` (``spool.fs``);
- ``file:///path``: the filesystem spool at ``/path``.

A database backend (a later issue) adds its scheme here and nowhere else.

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
    raise ConfigError(f"spool_url = {url!r}: not a spool this mailpipe knows (use \"\" or file:///path)")


__all__ = ["ALL", "CORRUPT", "Claimed", "CorruptEntry", "Listed", "Query", "Spool", "open_spool", "spool_at"]
