"""POP3 command grammar and line framing, pure code (no I/O).

Owns: splitting received bytes into lines (``LineBuffer``) with a length limit,
and parsing one command line into a typed ``Command``. Either a line parses,
or ``Pop3SyntaxError`` (or its subclass ``UnknownCommand``) is raised; nothing
else ever escapes (the fuzz tests check exactly this).

Grammar (RFC 2449 section 3, which generalises RFC 1939 section 3)::

    command  = keyword *(SP param) CRLF   ; 255 octets maximum (we allow more)
    keyword  = 3*4VCHAR
    param    = 1*VCHAR

Exception, as RFC 1939 section 7 allows: PASS takes the rest of the line, so a
password may contain spaces. A bare LF ends a line too (lenient clients).

Must not: know about states, accounts or the maildrop.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Pop3SyntaxError(ValueError):
    """The line is not a well-formed command; the reply is ``-ERR``."""


class UnknownCommand(Pop3SyntaxError):
    """Well-formed keyword that this server does not implement (APOP included)."""


class LineTooLong(Pop3SyntaxError):
    """A line exceeded the limit; the rest of it up to the next LF was discarded."""


class Verb(enum.Enum):
    __hash__ = object.__hash__      # members are singletons; Enum's hash is slow Python code

    USER = "USER"
    PASS = "PASS"
    AUTH = "AUTH"
    STLS = "STLS"
    CAPA = "CAPA"
    QUIT = "QUIT"
    STAT = "STAT"
    LIST = "LIST"
    RETR = "RETR"
    DELE = "DELE"
    NOOP = "NOOP"
    RSET = "RSET"
    TOP = "TOP"
    UIDL = "UIDL"


@dataclass(frozen=True)
class Command:
    verb: Verb
    number: int | None = None     # message number (LIST, RETR, DELE, TOP, UIDL)
    count: int | None = None      # TOP: body lines
    text: str | None = None       # USER name, PASS password, AUTH mechanism
    initial: str | None = None    # AUTH initial response (RFC 5034)


# keyword = 3*4VCHAR ; param = 1*VCHAR  (VCHAR = %x21-7E)
_KEYWORD_RE = re.compile(r"[\x21-\x7e]{3,4}")
_PARAM_RE = re.compile(r"[\x21-\x7e]+")
# msg = 1*DIGIT, no sign, no leading "+"; at most 10 digits keeps it an int we can compare
_NUMBER_RE = re.compile(r"[0-9]{1,10}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# verb -> (required params, optional params)
_ARITY: dict[Verb, tuple[int, int]] = {
    Verb.USER: (1, 0), Verb.AUTH: (0, 2), Verb.STLS: (0, 0), Verb.CAPA: (0, 0),
    Verb.QUIT: (0, 0), Verb.STAT: (0, 0), Verb.LIST: (0, 1), Verb.RETR: (1, 0),
    Verb.DELE: (1, 0), Verb.NOOP: (0, 0), Verb.RSET: (0, 0), Verb.TOP: (2, 0),
    Verb.UIDL: (0, 1),
}
_NUMBERED = frozenset({Verb.LIST, Verb.RETR, Verb.DELE, Verb.TOP, Verb.UIDL})


def decode_line(line: bytes) -> str:
    """UTF-8 text of a line without its CRLF; control characters are a syntax error."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise Pop3SyntaxError("line is not UTF-8") from None
    if _CONTROL_RE.search(text):
        raise Pop3SyntaxError("control character in line")
    return text


def parse_command(line: bytes) -> Command:
    """Parse one command line (without CRLF) into a ``Command``."""
    text = decode_line(line)
    keyword, _, rest = text.partition(" ")
    if not _KEYWORD_RE.fullmatch(keyword):
        raise Pop3SyntaxError("bad keyword")
    try:
        verb = Verb(keyword.upper())
    except ValueError:
        raise UnknownCommand(keyword) from None
    if verb is Verb.PASS:
        if not rest:
            raise Pop3SyntaxError("PASS needs an argument")
        return Command(verb, text=rest)
    return _with_params(verb, _params(rest))


def _params(rest: str) -> list[str]:
    if not rest:
        return []
    params = rest.split(" ")
    if not all(_PARAM_RE.fullmatch(p) for p in params):
        raise Pop3SyntaxError("bad parameter")
    return params


def _with_params(verb: Verb, params: list[str]) -> Command:
    required, optional = _ARITY[verb]
    if not required <= len(params) <= required + optional:
        raise Pop3SyntaxError("wrong number of parameters")
    if verb in _NUMBERED:
        numbers = [_number(p) for p in params]
        return Command(verb, number=numbers[0] if numbers else None,
                       count=numbers[1] if len(numbers) > 1 else None)
    if verb is Verb.AUTH:
        return Command(verb, text=params[0].upper() if params else None,
                       initial=params[1] if len(params) > 1 else None)
    return Command(verb, text=params[0] if params else None)


def _number(param: str) -> int:
    if not _NUMBER_RE.fullmatch(param):
        raise Pop3SyntaxError("bad number")
    return int(param)


class LineBuffer:
    """Accumulates received bytes and hands out complete lines (CRLF or LF stripped).

    A line longer than ``limit`` octets raises ``LineTooLong`` once; the
    buffer then discards everything up to the next LF, so memory stays bounded.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> None:
        self._data += data

    def clear(self) -> None:
        """Drop everything buffered (after STLS: plaintext must not leak into TLS)."""
        self._data.clear()
        self._discarding = False

    @property
    def pending(self) -> bool:
        return bool(self._data)

    def next_line(self) -> bytes | None:
        """The next complete line, or None if more data is needed."""
        end = self._data.find(b"\n")
        if self._discarding:
            if end < 0:
                self._data.clear()
                return None
            del self._data[: end + 1]
            self._discarding = False
            end = self._data.find(b"\n")
        if end < 0:
            if len(self._data) > self.limit:
                self._data.clear()
                self._discarding = True
                raise LineTooLong("line too long")
            return None
        line = bytes(self._data[:end])
        del self._data[: end + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.limit:
            raise LineTooLong("line too long")
        return line
