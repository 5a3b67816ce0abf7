"""A raw-socket SMTP client for tests that must send what no library would (bare LF, early talk...)."""

from __future__ import annotations

import re
import socket
import time

_LAST_LINE = re.compile(rb"^\d{3} ", re.M)


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self, timeout: float = 10.0) -> str:
        """The next complete reply (multi-line joined with CRLF); '' if the server closed."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.buf.split(b"\r\n")
            for index, line in enumerate(lines[:-1]):
                if _LAST_LINE.match(line):
                    self.buf = b"\r\n".join(lines[index + 1:])
                    return b"\r\n".join(lines[:index + 1]).decode("utf-8", "replace")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no complete reply, have {self.buf[:200]!r}")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                return ""
            self.buf += chunk

    def command(self, line: bytes) -> str:
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the connection (reads until EOF, bounded)."""
        self.sock.settimeout(timeout)
        for _ in range(1000):
            try:
                if not self.sock.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
        return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
