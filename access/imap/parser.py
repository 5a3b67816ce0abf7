"""Sans-I/O framing of IMAP client input into commands (h11 style).

``receive_data(bytes)`` buffers; ``next_event()`` returns one of the events
below. The caller writes ``+ Ready`` when it gets ``Continue`` (a synchronising
literal may now be sent) and switches to ``line_mode`` for IDLE's ``DONE`` and
AUTHENTICATE's client responses.

Rules (RFC 3501 section 4.3 and 7.5, RFC 7888):

- a command is a line ending in CRLF (bare LF accepted); a line ending in
  ``{n}`` or ``{n+}`` is followed by ``n`` octets of literal and more line;
- a literal larger than ``max_literal``: synchronising -> tagged BAD without a
  continuation (the client then sends nothing); non-synchronising -> fatal;
- a command line longer than ``max_line`` (literals excluded) -> fatal.

Fatal events mean: reply ``* BYE`` and close, because the stream can no longer
be framed. Never raises for any input.

Must not: interpret commands, or perform I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailpipe.access.imap.grammar import Atom, Literal, Syntax, tokenize


@dataclass(frozen=True)
class NeedData:
    pass


@dataclass(frozen=True)
class Continue:
    """The client waits for "+" before sending a synchronising literal."""


@dataclass(frozen=True)
class Command:
    tag: str
    name: str           # upper case
    args: tuple


@dataclass(frozen=True)
class Malformed:
    tag: str            # "*" when no tag could be read
    reason: str
    fatal: bool = False


@dataclass(frozen=True)
class Line:
    data: bytes         # without CRLF


NEED_DATA = NeedData()
CONTINUE = Continue()
_LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}$")
_TAG_RE = re.compile(rb"^[\x21\x23\x24\x26\x27\x2c-\x5a\x5e-\x7a\x7c\x7e]+$")  # astring-char minus "+", "(", ")", "{", "%", "*", '"', "\\", "]"


class CommandParser:
    def __init__(self, max_literal: int = 64 << 20, max_line: int = 65536) -> None:
        self.max_literal = max_literal
        self.max_line = max_line
        self.line_mode = False
        self._buf = bytearray()
        self._pieces: list[bytes | Literal] = []
        self._text_size = 0
        self._literal: int | None = None
        self.dead = False   # after a fatal event nothing more is framed

    def receive_data(self, data: bytes) -> None:
        if not self.dead:
            self._buf += data

    def next_event(self):
        if self.dead:
            return NEED_DATA
        if self.line_mode:
            return self._line_event()
        if self._literal is not None:
            if len(self._buf) < self._literal:
                return NEED_DATA
            self._pieces.append(Literal(bytes(self._buf[:self._literal])))
            del self._buf[:self._literal]
            self._literal = None
        return self._command_event()

    def _take_line(self) -> bytes | None:
        idx = self._buf.find(b"\n")
        if idx < 0:
            return None
        line = bytes(self._buf[:idx])
        del self._buf[:idx + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _line_event(self):
        line = self._take_line()
        if line is None:
            if len(self._buf) > self.max_line:
                return self._fail("Line too long", fatal=True)
            return NEED_DATA
        return Line(line)

    def _command_event(self):
        line = self._take_line()
        if line is None:
            if len(self._buf) + self._text_size > self.max_line:
                return self._fail("Command line too long", fatal=True)
            return NEED_DATA
        self._text_size += len(line)
        if self._text_size > self.max_line:
            return self._fail("Command line too long", fatal=True)
        match = _LITERAL_RE.search(line)
        if match is None:
            self._pieces.append(line)
            return self._finish()
        self._pieces.append(line[:match.start()])
        size, plus = int(match.group(1)), bool(match.group(2))
        if size > self.max_literal:
            return self._fail("[TOOBIG] Literal too large", fatal=plus)
        self._literal = size
        return self.next_event() if plus else CONTINUE

    def _tag(self) -> str:
        first = self._pieces[0] if self._pieces and isinstance(self._pieces[0], bytes) else b""
        tag = first.split(b" ", 1)[0]
        return tag.decode("ascii") if _TAG_RE.match(tag) else "*"

    def _fail(self, reason: str, fatal: bool) -> Malformed:
        tag = self._tag()
        self._pieces, self._text_size, self._literal = [], 0, None
        if fatal:
            self.dead = True
            self._buf.clear()
        return Malformed(tag, reason, fatal)

    def _finish(self):
        pieces = self._pieces
        tag = self._tag()
        self._pieces, self._text_size = [], 0
        if tag == "*":
            return Malformed("*", "Missing or invalid tag")
        try:
            tokens = tokenize(pieces)
        except Syntax as exc:
            return Malformed(tag, str(exc))
        if len(tokens) < 2 or not isinstance(tokens[1], Atom):
            return Malformed(tag, "Missing command")
        return Command(tag, tokens[1].upper, tuple(tokens[2:]))
