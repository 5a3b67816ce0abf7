"""SEARCH: the search-key grammar of RFC 3501 6.4.4 compiled into a predicate over messages.

Owns: parsing every search key (flags, dates, sizes, header and text keys,
sequence and UID sets, NOT, OR, parenthesised AND) into a predicate, and
matching text case-insensitively on decoded MIME (RFC 2047 headers, base64 /
quoted-printable bodies in their charset, NFC-normalised).

Must not: read files itself; the ``Candidate`` passed in loads the message lazily.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from mailpipe.access.imap import grammar, mime
from mailpipe.access.imap.grammar import Atom, Syntax

TEXT_CACHE_CHARS = 64 << 20   #: normalised body text kept for repeated searches (characters)
_texts: OrderedDict = OrderedDict()
_texts_size = [0]
_texts_lock = threading.Lock()
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
CHARSETS = ("UTF-8", "US-ASCII")


class BadCharset(Exception):
    pass


@dataclass
class Candidate:
    seq: int
    uid: int
    flags: set[str]             # lower-case flag names
    recent: bool
    size: int
    internal_of: Callable[[], float]
    load: Callable[[], mime.Part | None]
    load_header: Callable[[], mime.Part | None]
    _part: mime.Part | None = None
    _loaded: bool = False
    _header: mime.Part | None = None
    key: object = None          #: identity of the message (immutable content) for the text cache

    @property
    def internal(self) -> float:
        return self.internal_of()

    def part(self) -> mime.Part | None:
        if not self._loaded:
            self._part, self._loaded = self.load(), True
        return self._part

    def header(self) -> mime.Part | None:
        """The parsed top-level header (from the whole message if that is already loaded)."""
        if self._loaded:
            return self._part
        if self._header is None:
            self._header = self.load_header()
        return self._header


Pred = Callable[[Candidate], bool]


@dataclass
class _Ctx:
    max_seq: int
    max_uid: int
    needs_file: bool = False


def compile_search(args: tuple, max_seq: int, max_uid: int) -> tuple[Pred, bool]:
    """(predicate, needs the message file) for SEARCH arguments; raises Syntax / BadCharset."""
    tokens = list(args)
    if tokens and isinstance(tokens[0], Atom) and tokens[0].upper == "CHARSET":
        if len(tokens) < 2 or grammar.astring(tokens[1]).upper() not in CHARSETS:
            raise BadCharset()
        tokens = tokens[2:]
    if not tokens:
        raise Syntax("missing search key")
    ctx = _Ctx(max_seq, max_uid)
    preds = []
    while tokens:
        preds.append(_key(tokens, ctx, 0))
    return _and(preds), ctx.needs_file


def _and(preds: list[Pred]) -> Pred:
    return preds[0] if len(preds) == 1 else (lambda c: all(p(c) for p in preds))


def _take(tokens: list):
    if not tokens:
        raise Syntax("missing search argument")
    return tokens.pop(0)


def _text(tokens: list) -> str:
    return mime.normalize(grammar.astring(_take(tokens)))


FLAG_KEYS = {"ANSWERED": ("\\answered", True), "DELETED": ("\\deleted", True), "DRAFT": ("\\draft", True),
             "FLAGGED": ("\\flagged", True), "SEEN": ("\\seen", True), "UNANSWERED": ("\\answered", False),
             "UNDELETED": ("\\deleted", False), "UNDRAFT": ("\\draft", False),
             "UNFLAGGED": ("\\flagged", False), "UNSEEN": ("\\seen", False)}
ADDRESS_KEYS = ("FROM", "TO", "CC", "BCC", "SUBJECT")


def _key(tokens: list, ctx: _Ctx, depth: int) -> Pred:
    if depth > 32:
        raise Syntax("search nested too deeply")
    token = _take(tokens)
    if isinstance(token, list):
        inner = list(token)
        if not inner:
            raise Syntax("empty search list")
        preds = []
        while inner:
            preds.append(_key(inner, ctx, depth + 1))
        return _and(preds)
    if grammar.is_sequence_set(token):
        return _in_set(grammar.sequence_set(token), ctx.max_seq, lambda c: c.seq)
    name = grammar.atom(token).upper() if isinstance(token, Atom) else ""
    return _named(name, tokens, ctx, depth)


def _named(name: str, tokens: list, ctx: _Ctx, depth: int) -> Pred:
    if name in FLAG_KEYS:
        flag, want = FLAG_KEYS[name]
        return lambda c: (flag in c.flags) == want
    simple = {"ALL": lambda c: True, "NEW": lambda c: c.recent and "\\seen" not in c.flags,
              "OLD": lambda c: not c.recent, "RECENT": lambda c: c.recent}
    if name in simple:
        return simple[name]
    if name in ("KEYWORD", "UNKEYWORD"):
        flag = grammar.atom(_take(tokens)).lower()
        want = name == "KEYWORD"
        return lambda c: (flag in c.flags) == want
    if name == "NOT":
        inner = _key(tokens, ctx, depth + 1)
        return lambda c: not inner(c)
    if name == "OR":
        left, right = _key(tokens, ctx, depth + 1), _key(tokens, ctx, depth + 1)
        return lambda c: left(c) or right(c)
    if name == "UID":
        return _in_set(grammar.sequence_set(_take(tokens)), ctx.max_uid, lambda c: c.uid)
    if name in ("LARGER", "SMALLER"):
        size = grammar.number(_take(tokens))
        return (lambda c: c.size > size) if name == "LARGER" else (lambda c: c.size < size)
    if name in ("BEFORE", "ON", "SINCE"):
        return _date_key(name, _date(_take(tokens)), lambda c: _local_day(c.internal))
    if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        ctx.needs_file = True
        return _date_key(name[4:], _date(_take(tokens)), _sent_day)
    ctx.needs_file = True
    return _content_key(name, tokens)


def _content_key(name: str, tokens: list) -> Pred:
    if name in ADDRESS_KEYS:
        field, needle = name.lower(), _text(tokens)
        return lambda c: _header_has(c, field, needle)
    if name == "HEADER":
        field, needle = grammar.astring(_take(tokens)).lower(), _text(tokens)
        return lambda c: _header_has(c, field, needle)
    if name == "BODY":
        needle = _text(tokens)
        return lambda c: _body_has(c, needle)
    if name == "TEXT":
        needle = _text(tokens)
        return lambda c: _header_has(c, None, needle) or _body_has(c, needle)
    raise Syntax("unknown search key")


def _in_set(ranges, star: int, value: Callable[[Candidate], int]) -> Pred:
    bounds = []
    for low, high in ranges:
        a, b = (star if low is None else low), (star if high is None else high)
        bounds.append((min(a, b), max(a, b)))
    return lambda c: any(lo <= value(c) <= hi for lo, hi in bounds)


def _date(token) -> tuple[int, int, int]:
    """date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year."""
    text = grammar.astring(token)
    try:
        day, month, year = text.split("-")
        return int(year), MONTHS.index(month.lower()) + 1, int(day)
    except ValueError:
        raise Syntax("invalid date") from None


def _date_key(kind: str, day: tuple[int, int, int], value: Callable[[Candidate], tuple | None]) -> Pred:
    def pred(c: Candidate) -> bool:
        got = value(c)
        if got is None:
            return False
        return got < day if kind == "BEFORE" else got == day if kind == "ON" else got >= day
    return pred


def _local_day(ts: float) -> tuple[int, int, int]:
    tm = time.localtime(ts)
    return tm.tm_year, tm.tm_mon, tm.tm_mday


def _sent_day(c: Candidate) -> tuple[int, int, int] | None:
    part = c.header()
    value = part.get("date") if part else None
    if not value:
        return None
    parsed = email.utils.parsedate_tz(value.decode("ascii", "replace"))
    return (parsed[0], parsed[1], parsed[2]) if parsed else None


def _header_has(c: Candidate, field: str | None, needle: str) -> bool:
    fields = _cached(c, "h", _header_texts)
    if fields is None:
        return False
    return any((field is None or name == field) and (not needle or needle in value) for name, value in fields)


def _header_texts(c: Candidate) -> list[tuple[str, str]] | None:
    part = c.header()
    if part is None:
        return None
    return [(name, mime.normalize(mime.decode_header_value(value))) for name, value, _raw in part.fields()]


def _body_texts(c: Candidate) -> list[str] | None:
    part = c.part()
    if part is None:
        return None
    return [mime.normalize(text) for text in mime.texts(part)]


def _body_has(c: Candidate, needle: str) -> bool:
    texts = _cached(c, "b", _body_texts)
    return texts is not None and any(needle in text for text in texts)


def _size(value: list) -> int:
    return sum(len(v) if isinstance(v, str) else len(v[1]) + 16 for v in value)


def _cached(c: Candidate, kind: str, compute):
    """Normalised decoded texts of a message; message files never change, so they are cached by key."""
    key = (c.key, kind) if c.key is not None else None
    if key is not None:
        with _texts_lock:
            hit = _texts.get(key)
            if hit is not None:
                _texts.move_to_end(key)
                return hit
    value = compute(c)
    if key is not None and value is not None:
        with _texts_lock:
            _texts[key] = value
            _texts_size[0] += _size(value)
            while _texts_size[0] > TEXT_CACHE_CHARS and _texts:
                _old, dropped = _texts.popitem(last=False)
                _texts_size[0] -= _size(dropped)
    return value
