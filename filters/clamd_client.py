"""The clamd client: the PyPI ``clamd`` package behind a thin, safe wrapper.

Owns: turning ``clamd`` 1.0.2's quirks into one small API and the project's
error tree. The quirks it wraps (see the av-spam notes):

- ``instream()`` needs a file object, not bytes -> we pass a reader;
- it sends 1 KiB chunks with ``socket.send()`` (a short send would corrupt
  the stream) -> the socket's ``send`` is ``sendall`` and the reader hands out
  64 KiB chunks;
- ``connect()`` has no timeout and leaks the socket when it fails -> we open
  the socket ourselves (``filters.endpoint.connect``);
- over ``StreamMaxLength`` it raises a bare ``BrokenPipeError``, and
  ``clamd.ConnectionError`` shadows the builtin -> every ``OSError`` and
  ``clamd.ClamdError`` becomes ``core.errors.FilterUnavailable``.

Must not: decide what to do with a result (that is ``filters.antivirus``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import clamd

from core.errors import FilterUnavailable
from filters.endpoint import Endpoint, connect, parse_endpoint

#: bytes per INSTREAM chunk (must stay below clamd's StreamMaxLength)
CHUNK = 64 * 1024


@dataclass(frozen=True)
class ScanResult:
    infected: bool
    signature: str | None = None


class _SendAllSocket(socket.socket):
    """A socket whose ``send`` never sends short (clamd 1.0.2 ignores the return value)."""

    def send(self, data, flags=0):  # type: ignore[override]
        self.sendall(data, flags)
        return len(data)


class _Reader:
    """File-like view of bytes handing out ``CHUNK``-sized pieces whatever size is asked."""

    def __init__(self, raw: bytes) -> None:
        self._view = memoryview(raw)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        size = max(size, CHUNK)
        chunk = self._view[self._pos:self._pos + size].tobytes()
        self._pos += len(chunk)
        return chunk


class _Clamd(clamd.ClamdNetworkSocket):
    """``clamd.ClamdNetworkSocket`` with our connect (timeout on connect, no leak, unix or TCP)."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout)
        self.endpoint = endpoint

    def _init_socket(self) -> None:
        self.clamd_socket = None
        self.clamd_socket = connect(self.endpoint, self.timeout, _SendAllSocket)

    def _close_socket(self) -> None:
        # the package closes in ``finally`` even when connect failed
        if getattr(self, "clamd_socket", None) is not None:
            self.clamd_socket.close()


class ClamdClient:
    """Ask clamd about whole raw messages (INSTREAM); ClamAV decodes MIME and archives itself."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.endpoint = parse_endpoint(url)
        self.timeout = timeout

    def _call(self, method: str, *args):
        conn = _Clamd(self.endpoint, self.timeout)
        try:
            return getattr(conn, method)(*args)
        except (OSError, clamd.ClamdError) as exc:
            raise FilterUnavailable(f"clamd at {self.endpoint}: {type(exc).__name__}: {exc}") from None
        finally:
            conn._close_socket()

    def ping(self) -> bool:
        return self._call("ping") == "PONG"

    def version(self) -> str:
        return str(self._call("version"))

    def scan(self, raw: bytes) -> ScanResult:
        """Scan ``raw``; FilterUnavailable when clamd cannot be asked or answers ERROR."""
        reply = self._call("instream", _Reader(raw))
        if not reply or "stream" not in reply:
            raise FilterUnavailable(f"clamd at {self.endpoint}: empty reply")
        status, signature = reply["stream"]
        if status == "OK":
            return ScanResult(infected=False)
        if status == "FOUND" and signature:
            return ScanResult(infected=True, signature=signature)
        raise FilterUnavailable(f"clamd at {self.endpoint}: scan error {signature!r}")
