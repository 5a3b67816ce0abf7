"""The IMAP4rev1 token grammar (RFC 3501 section 9), pure functions over bytes.

Owns: turning the pieces of one complete command (text runs and literal
octets, as framed by ``access.imap.parser``) into tokens, and the small
grammars used inside arguments: sequence sets, modified UTF-7 mailbox names,
date strings and the reply-side quoting of strings.

Tokens::

    Atom(value)            atom / number / flag / section such as BODY[HEADER.FIELDS (A B)]<0.10>
    bytes                  quoted ("...") or literal ({n}) string
    list                   parenthesised list of tokens

Every failure raises ``Syntax`` (answered as tagged BAD); nothing else escapes.

Must not: know commands, states or storage.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass


class Syntax(Exception):
    """The input does not match the grammar; the message is safe to send to the client."""


@dataclass(frozen=True)
class Atom:
    value: str

    @property
    def upper(self) -> str:
        return self.value.upper()


@dataclass(frozen=True)
class Literal:
    """Marks the position of a literal's octets between text runs."""

    data: bytes


@dataclass(frozen=True)
class Spooled:
    """A literal whose octets the shell stored in a file (a large APPEND message), not in memory.

    It stays one token of its own; only the commands that take a message accept it. An empty
    `path` means the octets could not be stored (they were read and dropped).
    """

    path: str
    size: int


Piece = bytes | Literal | Spooled


# quoted-specials = DQUOTE / "\" ; atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards /
# quoted-specials / resp-specials.  We accept "%", "*" and "]" inside atoms (list patterns,
# sequence sets, sections) and read a "[...]" section whole, spaces and parentheses included.
_ATOM_STOP = frozenset(b' (){"\r\n') | frozenset(range(0, 32)) | {127}
MAX_DEPTH = 16


def tokenize(pieces: list[Piece]) -> list:
    """Tokens of one command (tag and name included)."""
    reader = _Reader(pieces)
    tokens = reader.sequence(depth=0, closing=False)
    return tokens


class _Reader:
    def __init__(self, pieces: list[Piece]) -> None:
        self.pieces = pieces
        self.index = 0
        self.pos = 0

    def _text(self) -> bytes:
        """The current text run (b"" at a literal or the end; ``_peek`` has checked there is one)."""
        piece = self.pieces[self.index] if self.index < len(self.pieces) else None
        return piece if isinstance(piece, bytes) else b""

    def _peek(self) -> int | Literal | Spooled | None:
        while self.index < len(self.pieces):
            piece = self.pieces[self.index]
            if isinstance(piece, (Literal, Spooled)):
                return piece
            if self.pos < len(piece):
                return piece[self.pos]
            self.index += 1
            self.pos = 0
        return None

    def sequence(self, depth: int, closing: bool) -> list:
        if depth > MAX_DEPTH:
            raise Syntax("lists nested too deeply")
        tokens: list = []
        while True:
            ch = self._peek()
            if ch is None:
                if closing:
                    raise Syntax("missing )")
                return tokens
            if ch == 0x20:
                self.pos += 1
                continue
            if ch == 0x29:  # ")"
                if not closing:
                    raise Syntax("unexpected )")
                self.pos += 1
                return tokens
            tokens.append(self._token(ch, depth))

    def _token(self, ch, depth: int):
        if isinstance(ch, (Literal, Spooled)):
            self.index += 1
            self.pos = 0
            return ch.data if isinstance(ch, Literal) else ch
        if ch == 0x28:  # "("
            self.pos += 1
            return self.sequence(depth + 1, closing=True)
        if ch == 0x22:
            return self._quoted()
        return self._atom()

    def _quoted(self) -> bytes:
        text = self._text()
        out = bytearray()
        i = self.pos + 1
        while i < len(text):
            c = text[i]
            if c == 0x5C and i + 1 < len(text) and text[i + 1] in (0x22, 0x5C):
                out.append(text[i + 1])
                i += 2
                continue
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c in (0x0D, 0x0A):
                break
            out.append(c)
            i += 1
        raise Syntax("unterminated quoted string")

    def _atom(self) -> Atom:
        text = self._text()
        start = i = self.pos
        while i < len(text):
            c = text[i]
            if c == 0x5B:  # "[": read the section whole
                end = text.find(b"]", i)
                if end < 0:
                    raise Syntax("missing ]")
                i = end + 1
                continue
            if c in _ATOM_STOP:
                break
            i += 1
        if i == start:
            raise Syntax("unexpected character")
        self.pos = i
        return Atom(text[start:i].decode("utf-8", "surrogateescape"))


# -- argument helpers ----------------------------------------------------------

def astring(token) -> str:
    """astring = 1*ASTRING-CHAR / string, as text (UTF-8)."""
    if isinstance(token, Atom):
        return token.value
    if isinstance(token, bytes):
        return token.decode("utf-8", "surrogateescape")
    raise Syntax("expected a string")


def astring_bytes(token) -> bytes:
    if isinstance(token, Atom):
        return token.value.encode("utf-8", "surrogateescape")
    if isinstance(token, bytes):
        return token
    raise Syntax("expected a string")


def atom(token) -> str:
    if not isinstance(token, Atom):
        raise Syntax("expected an atom")
    return token.value


def number(token, *, nz: bool = False) -> int:
    """number = 1*DIGIT (32-bit); nz-number excludes 0."""
    if not isinstance(token, Atom) or not token.value.isdigit() or len(token.value) > 10:
        raise Syntax("expected a number")
    value = int(token.value)
    if value > 0xFFFFFFFF or (nz and value == 0):
        raise Syntax("number out of range")
    return value


def plist(token) -> list:
    if not isinstance(token, list):
        raise Syntax("expected a parenthesised list")
    return token


# sequence-set = (seq-number / seq-range) *("," sequence-set); seq-number = nz-number / "*"
_SEQ_RE = re.compile(r"^(\d+|\*)(?::(\d+|\*))?$")


def sequence_set(token) -> list[tuple[int | None, int | None]]:
    """Ranges of a sequence set; None stands for "*". Ranges are not yet ordered."""
    if not isinstance(token, Atom):
        raise Syntax("expected a sequence set")
    ranges = []
    for item in token.value.split(","):
        match = _SEQ_RE.match(item)
        if not match:
            raise Syntax("invalid sequence set")
        low, high = (_seq_num(g) for g in (match.group(1), match.group(2) or match.group(1)))
        ranges.append((low, high))
    return ranges


def _seq_num(text: str) -> int | None:
    if text == "*":
        return None
    value = int(text)
    if value == 0 or value > 0xFFFFFFFF:
        raise Syntax("invalid sequence number")
    return value


def is_sequence_set(token) -> bool:
    return isinstance(token, Atom) and all(_SEQ_RE.match(i) for i in token.value.split(","))


# -- modified UTF-7 (RFC 3501 5.1.3) ---------------------------------------------

def mutf7_decode(name: str) -> str:
    """Decode a mailbox name; raises Syntax if it is not valid modified UTF-7."""
    out, i = [], 0
    while i < len(name):
        ch = name[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise Syntax("mailbox name is not modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            raise Syntax("mailbox name is not modified UTF-7")
        chunk = name[i + 1:end]
        out.append("&" if not chunk else _b64_utf16(chunk))
        i = end + 1
    return "".join(out)


def _b64_utf16(chunk: str) -> str:
    raw = chunk.replace(",", "/")
    try:
        data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        return data.decode("utf-16-be")
    except (ValueError, UnicodeDecodeError):
        raise Syntax("mailbox name is not modified UTF-7") from None


def mutf7_encode(text: str) -> str:
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


# -- reply side -----------------------------------------------------------------

_QUOTABLE = re.compile(rb"^[\x01-\x09\x0b\x0c\x0e-\x7f]*$")


def quote(value: bytes | str | None) -> bytes:
    """nstring: NIL, a quoted string, or a literal when the value needs one."""
    if value is None:
        return b"NIL"
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if len(value) < 1024 and _QUOTABLE.match(value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(value) + value


def literal(value: bytes) -> bytes:
    """Always a literal: body sections are sent this way so clients get the exact octets."""
    return b"{%d}\r\n" % len(value) + value
