"""Sans-I/O core of the SMTP client: reply parsing, EHLO capabilities, commands, dot-stuffing.

Owns, as pure code:

* ``ReplyParser``: ``feed(bytes)`` then ``next_reply()`` -> ``Reply`` or None
  (need more data). RFC 5321 4.2::

      Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
                       Reply-code [ SP textstring ] CRLF
      Reply-code     = %x32-35 %x30-35 %x30-39

  Anything else raises ``SmtpProtocolError``; lines and replies are bounded.
* ``Capabilities.from_ehlo``: PIPELINING, SIZE, STARTTLS, 8BITMIME, SMTPUTF8.
* ``mail_command``/``rcpt_command``: the bytes to send; ``dot_stuff``: the DATA
  body with CRLF line endings, leading dots doubled, and the final ``.``.
* ``classify``: reply code -> "sent" (2xx) / "deferred" (4xx) / "failed" (5xx).

Must not: touch sockets, clocks or TLS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 4096        #: RFC 5321 says 512; be lenient with real servers, but bounded
MAX_LINES = 128        #: lines in one multi-line reply

_LINE = re.compile(rb"^([2-5][0-5][0-9])([ -]?)(.*)$", re.S)


class SmtpProtocolError(Exception):
    """The server sent something that is not an SMTP reply."""


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """Single-line form for logs and results: ``"250 2.0.0 Ok queued"``."""
        return f"{self.code} {' '.join(line for line in self.lines if line)}".rstrip()

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class ReplyParser:
    """Incremental parser of server replies."""

    def __init__(self) -> None:
        self._buf = b""
        self._code: int | None = None
        self._lines: list[str] = []

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > MAX_LINE * MAX_LINES:
            raise SmtpProtocolError("reply too long")

    def next_reply(self) -> Reply | None:
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_LINE:
                    raise SmtpProtocolError("reply line too long")
                return None
            line, self._buf = self._buf[:end].rstrip(b"\r"), self._buf[end + 1:]
            reply = self._line(line)
            if reply is not None:
                return reply

    def _line(self, line: bytes) -> Reply | None:
        match = _LINE.match(line)
        if not match or len(line) > MAX_LINE:
            raise SmtpProtocolError("malformed reply line")
        code, sep, text = int(match.group(1)), match.group(2), match.group(3)
        if self._code is not None and code != self._code:
            raise SmtpProtocolError("reply code changed inside a multi-line reply")
        self._code = code
        self._lines.append(text.decode("utf-8", "replace").strip())
        if len(self._lines) > MAX_LINES:
            raise SmtpProtocolError("too many reply lines")
        if sep == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code, self._lines = None, []
        return reply

    @property
    def pending(self) -> bool:
        """True when bytes or a partial reply are buffered (the server spoke out of turn)."""
        return bool(self._buf) or self._code is not None


@dataclass(frozen=True)
class Capabilities:
    keywords: frozenset[str]
    size: int | None = None      #: SIZE limit in bytes; None = not announced, 0 = no fixed limit

    @classmethod
    def from_ehlo(cls, reply: Reply) -> "Capabilities":
        keywords: set[str] = set()
        size: int | None = None
        for line in reply.lines[1:]:
            words = line.split()
            if not words:
                continue
            keyword = words[0].upper()
            keywords.add(keyword)
            if keyword == "SIZE":
                size = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
        return cls(frozenset(keywords), size)

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.keywords


NO_CAPABILITIES = Capabilities(frozenset())


def classify(code: int) -> str:
    """Outcome of a reply for the recipients it concerns."""
    if 200 <= code < 400:
        return "sent"
    return "deferred" if 400 <= code < 500 else "failed"


def _address(addr: str) -> bytes:
    addr = addr.strip().strip("<>")
    if any(c in addr for c in "\r\n<> ") or len(addr) > 512:
        raise ValueError("address not sendable")
    return b"<" + addr.encode("utf-8") + b">"


def needs_smtputf8(*addresses: str) -> bool:
    return any(not a.isascii() for a in addresses)


def mail_command(sender: str, size: int, caps: Capabilities, eightbit: bool, utf8: bool) -> bytes:
    params = []
    if caps.has("SIZE"):
        params.append(b"SIZE=%d" % size)
    if eightbit and caps.has("8BITMIME"):
        params.append(b"BODY=8BITMIME")
    if utf8 and caps.has("SMTPUTF8"):
        params.append(b"SMTPUTF8")
    return b" ".join([b"MAIL FROM:" + _address(sender), *params]) + b"\r\n"


def rcpt_command(recipient: str) -> bytes:
    return b"RCPT TO:" + _address(recipient) + b"\r\n"


def dot_stuff(message: bytes) -> bytes:
    """DATA body: every line ending CRLF (bare CR/LF normalised), leading '.' doubled, then '.'."""
    text = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not text:
        return b".\r\n"
    if not text.endswith(b"\n"):
        text += b"\n"
    text = text.replace(b"\n.", b"\n..")          # whole-buffer passes: no Python loop per line
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\n", b"\r\n") + b".\r\n"
