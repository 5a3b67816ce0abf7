"""A small synchronous SPAMC/1.5 client for spamd, over TCP or a unix socket.

Owns: the request bytes, reading one reply (spamd closes after it) within a
deadline and a size bound, and parsing it into ``SpamResult``. Pure parsing
lives in ``build_request`` / ``parse_reply`` so it is tested without sockets.

Why our own: the PyPI ``spamassassin-client`` ships no code in 0.0.4 and
hard-codes 127.0.0.1:783 before that; ``aiospamc`` is async and builds an SSL
context per call. A sync client fits the stage workers, which run
in Celery's threads pool and block on one daemon call at a time.

Must not: decide what a score means (``filters.spam`` does), or raise
anything but ``FilterUnavailable`` for daemon trouble.

Wire format (spamd's PROTOCOL file)::

    SYMBOLS SPAMC/1.5\\r\\nContent-length: <n>\\r\\n\\r\\n<message>
    SPAMD/1.1 0 EX_OK\\r\\nContent-length: <m>\\r\\nSpam: True ; 1000.0 / 5.0\\r\\n\\r\\nGTUBE,NO_RELAYS
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

from mailpipe.core.errors import FilterUnavailable
from mailpipe.core.errtext import say
from mailpipe.core.endpoint import connect, parse_endpoint

PROTOCOL = "SPAMC/1.5"
#: replies larger than this are refused (SYMBOLS/CHECK replies are tiny)
MAX_REPLY = 1024 * 1024
_STATUS = re.compile(rb"^SPAMD/\d+\.\d+ (\d+) (.*)$")
_SPAM = re.compile(r"^\s*(True|False|Yes|No)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)\s*$", re.I)


@dataclass(frozen=True)
class SpamResult:
    spam: bool                       #: spamd's own opinion (score >= its required_score)
    score: float
    threshold: float                 #: spamd's required_score
    rules: tuple[str, ...] = ()      #: names of the SpamAssassin rules that hit


class SpamdProtocolError(ValueError):
    """spamd's reply could not be understood (translated to FilterUnavailable by the client)."""


def build_request(command: str, raw: bytes, user: str | None = None) -> bytes:
    lines = [f"{command} {PROTOCOL}", f"Content-length: {len(raw)}"]
    if user:
        lines.append(f"User: {user}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + raw


def _headers(block: bytes) -> tuple[int, str, dict[str, str]]:
    lines = block.split(b"\r\n")
    status = _STATUS.match(lines[0])
    if not status:
        raise SpamdProtocolError(f"bad status line {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise SpamdProtocolError(f"bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(status.group(1)), status.group(2).decode("latin-1"), headers


def parse_reply(reply: bytes) -> SpamResult:
    """Parse a CHECK or SYMBOLS reply; SpamdProtocolError when it is not one."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        raise SpamdProtocolError("reply has no header end")
    code, text, headers = _headers(head)
    if code != 0:
        raise SpamdProtocolError(f"spamd error {code} {text}")
    spam = _SPAM.match(headers.get("spam", ""))
    if not spam:
        raise SpamdProtocolError("reply has no valid Spam header")
    names = body.decode("latin-1").strip()
    rules = tuple(name for name in names.split(",") if name) if names else ()
    flag = spam.group(1).lower() in ("true", "yes")
    return SpamResult(flag, float(spam.group(2)), float(spam.group(3)), rules)


class SpamcClient:
    """One connection per request, as spamd expects; every wait bounded by ``timeout``."""

    def __init__(self, url: str, timeout: float = 30.0, user: str | None = None) -> None:
        self.endpoint = parse_endpoint(url)
        self.timeout = timeout
        self.user = user

    def _exchange(self, request: bytes) -> bytes:
        deadline = time.monotonic() + self.timeout
        try:
            with connect(self.endpoint, self.timeout) as sock:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)     # as spamc does: spamd may wait for EOF on a last line without LF
                return _read_all(sock, deadline)
        except OSError as exc:
            raise FilterUnavailable(f"spamd at {self.endpoint}: {say(exc)}") from None

    def ping(self) -> bool:
        reply = self._exchange(f"PING {PROTOCOL}\r\n\r\n".encode("ascii"))
        return b" PONG" in reply.split(b"\r\n", 1)[0]

    def check(self, raw: bytes) -> SpamResult:
        """Score ``raw`` (SYMBOLS: verdict, score and rule names in one round trip)."""
        reply = self._exchange(build_request("SYMBOLS", raw, self.user))
        try:
            return parse_reply(reply)
        except SpamdProtocolError as exc:
            raise FilterUnavailable(f"spamd at {self.endpoint}: {exc}") from None


def _read_all(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= MAX_REPLY:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("spamd reply took too long")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise FilterUnavailable("spamd reply too large")
