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

Large literals: when a literal is larger than ``spill_over`` and the injected
``spill(size, head)`` returns a ``LiteralSink`` (the shell decides, e.g. only
for APPEND after login), the literal's octets go to that sink as they arrive
instead of accumulating here, and the command gets a ``grammar.Spooled``
token in its place; memory stays flat in the literal size. The parser itself
still performs no I/O: the sink is the shell's.

Must not: interpret commands, or perform I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Protocol

from mailpipe.access.imap.grammar import Atom, Literal, Piece, Spooled, Syntax, tokenize


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


class LiteralSink(Protocol):
    """Where the octets of one large literal go (the shell's temporary file)."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> Spooled: ...

    def discard(self) -> None: ...


Spill = Callable[[int, bytes], "LiteralSink | None"]   #: (literal size, command text so far) -> sink or None
Event = NeedData | Continue | Command | Malformed | Line


NEED_DATA = NeedData()
CONTINUE = Continue()
_LITERAL_RE = re.compile(rb"\{(\d{1,20})(\+?)\}$")
_TAG_RE = re.compile(rb"^[\x21\x23\x24\x26\x27\x2c-\x5a\x5e-\x7a\x7c\x7e]+$")  # astring-char minus "+", "(", ")", "{", "%", "*", '"', "\\", "]"


class CommandParser:
    def __init__(self, max_literal: int = 64 << 20, max_line: int = 65536, *,
                 spill_over: int = 1 << 20, spill: Spill | None = None) -> None:
        self.max_literal = max_literal
        self.max_line = max_line
        self.line_mode = False
        self.spill_over, self.spill = spill_over, spill
        self._buf = bytearray()
        self._pieces: list[Piece] = []
        self._text_size = 0
        self._literal: int | None = None
        self._sink: LiteralSink | None = None
        self.dead = False   # after a fatal event nothing more is framed

    def receive_data(self, data: bytes) -> None:
        if not self.dead:
            self._buf += data

    def next_event(self) -> Event:
        if self.dead:
            return NEED_DATA
        if self.line_mode:
            return self._line_event()
        if self._literal is not None:
            if self._sink is not None:
                return self._spill_event()
            if len(self._buf) < self._literal:
                return NEED_DATA
            self._pieces.append(Literal(bytes(self._buf[:self._literal])))
            del self._buf[:self._literal]
            self._literal = None
        return self._command_event()

    def _spill_event(self) -> Event:
        """Hand buffered literal octets to the sink; go on with the command once all are there."""
        assert self._sink is not None and self._literal is not None
        take = min(len(self._buf), self._literal)
        if take:
            self._sink.write(bytes(self._buf[:take]))
            del self._buf[:take]
            self._literal -= take
        if self._literal:
            return NEED_DATA
        sink, self._sink, self._literal = self._sink, None, None
        self._pieces.append(sink.finish())
        return self._command_event()

    def abandon(self) -> None:
        """The connection ends: a literal being spooled is discarded."""
        if self._sink is not None:
            self._sink.discard()
            self._sink = None

    def _take_line(self) -> bytes | None:
        idx = self._buf.find(b"\n")
        if idx < 0:
            return None
        line = bytes(self._buf[:idx])
        del self._buf[:idx + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _line_event(self) -> Event:
        line = self._take_line()
        if line is None:
            if len(self._buf) > self.max_line:
                return self._fail("Line too long", fatal=True)
            return NEED_DATA
        return Line(line)

    def _command_event(self) -> Event:
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
        if self.spill is not None and size > self.spill_over:
            head = self._pieces[0] if isinstance(self._pieces[0], bytes) else b""
            self._sink = self.spill(size, head)
        return self.next_event() if plus else CONTINUE

    def _tag(self) -> str:
        first = self._pieces[0] if self._pieces and isinstance(self._pieces[0], bytes) else b""
        tag = first.split(b" ", 1)[0]
        return tag.decode("ascii") if _TAG_RE.match(tag) else "*"

    def _fail(self, reason: str, fatal: bool) -> Malformed:
        tag = self._tag()
        self._pieces, self._text_size, self._literal = [], 0, None
        self.abandon()
        if fatal:
            self.dead = True
            self._buf.clear()
        return Malformed(tag, reason, fatal)

    def _finish(self) -> Command | Malformed:
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
