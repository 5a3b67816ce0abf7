"""Daemon addresses: parse ``tcp://host:port`` / ``unix:/path`` and open a socket with timeouts.

Owns: the one URL syntax shared by the clamd and spamd clients, and a connect
that never blocks longer than its timeout and never leaks a socket.

Must not: speak any daemon protocol, or raise anything but ``ConfigError``
(bad URL) and ``OSError`` (connect failed) - clients translate the latter.
"""

from __future__ import annotations

import socket
from typing import Any
from dataclasses import dataclass
from urllib.parse import urlsplit

from mailpipe.core.errors import ConfigError

#: sun_path holds 108 bytes including the terminating NUL
MAX_UNIX_PATH = 107


@dataclass(frozen=True)
class Endpoint:
    """Where a daemon listens: ``path`` for a unix socket, else ``host``/``port``."""

    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"unix:{self.path}" if self.path else f"tcp://{self.host}:{self.port}"


def parse_endpoint(url: str) -> Endpoint:
    """Parse ``tcp://host:port`` (IPv6 as ``[::1]``) or ``unix:/path``; ConfigError otherwise."""
    if url.startswith("unix:"):
        path = url[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/") or "\0" in path or len(path.encode("utf-8", "replace")) > MAX_UNIX_PATH:
            raise ConfigError(f"{url!r}: expected unix:/absolute/path shorter than 108 bytes")
        return Endpoint(path=path)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if (not url.startswith("tcp://") or not host or not port or parts.path not in ("", "/")
            or any(c.isspace() or c == "\0" for c in host)):
        raise ConfigError(f"{url!r}: expected tcp://host:port or unix:/path")
    return Endpoint(host=host, port=port)


def connect(endpoint: Endpoint, timeout: float, sock_class: type[socket.socket] = socket.socket) -> socket.socket:
    """Open a stream socket to ``endpoint``; the timeout covers connect and every later call."""
    if endpoint.path:
        sock = sock_class(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[Any, ...] = endpoint.path
    else:
        try:
            info = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        except UnicodeError as exc:          # an unencodable host name is a lookup failure
            raise socket.gaierror(f"bad host name {endpoint.host!r}: {exc}") from None
        family, _, _, _, target = info[0]
        sock = sock_class(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock
