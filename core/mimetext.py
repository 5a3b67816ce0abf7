"""Decoding the text of one MIME part: transfer encoding undone, charset decoded.

Owns the one policy that IMAP SEARCH (``access.imap.mime``) and the filter
rules (``filters.rules.mime``) share, so the two never read the same part
differently:

* ``undo_transfer_encoding(data, cte)``: ``7bit``/``8bit``/``binary``/none as
  is, ``quoted-printable`` and ``base64`` decoded (RFC 2045 6.7, 6.8). Lenient
  by default (base64 with stray characters or missing padding is read as far
  as it goes, or left as is when that fails; an unknown encoding is left as is); ``strict=True`` answers None
  instead, for a caller that hands such input to a fuller parser.
* ``decode_text(data, charset)``: the declared charset (none, ``us-ascii`` or
  an unknown name read as UTF-8, since mislabelled 8-bit mail is mostly
  UTF-8); bytes the charset cannot decode become U+FFFD, and invalid UTF-8
  is read as Latin-1, so every byte stays visible to a search.

Must not: raise on any input, parse MIME structure or headers, or normalise text
(case folding and NFC are the caller's: IMAP and the rules fold differently).
"""

from __future__ import annotations

import binascii
import codecs
import quopri
import re

#: Content-Transfer-Encoding values whose body is the text itself
IDENTITY = frozenset({b"", b"7bit", b"8bit", b"binary"})
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


def undo_transfer_encoding(data: bytes, cte: bytes | str | None, *, strict: bool = False) -> bytes | None:
    """``data`` with its transfer encoding ``cte`` (any case, no blanks) undone.

    Lenient: never None. Strict: None for an unknown encoding or base64 that is not exact."""
    token = (cte.encode("ascii", "replace") if isinstance(cte, str) else cte or b"").lower()
    if token in IDENTITY:
        return data
    if token == b"quoted-printable":
        return quopri.decodestring(data)
    if token == b"base64":
        try:
            return binascii.a2b_base64(b"".join(data.splitlines()))
        except binascii.Error:
            return None if strict else _lenient_base64(data)
    return None if strict else data


def _lenient_base64(data: bytes) -> bytes:
    """What can be read of damaged base64 (other characters dropped, padding supplied);
    ``data`` itself when even that fails."""
    try:
        return binascii.a2b_base64(_NOT_BASE64.sub(b"", data) + b"==")
    except binascii.Error:
        return data


def decode_text(data: bytes, charset: str | None) -> str:
    """``data`` as text in ``charset`` (see the module docstring); never raises."""
    try:
        codec = codecs.lookup(charset or "us-ascii").name
    except (LookupError, ValueError):
        codec = "utf-8"
    if codec == "ascii":
        codec = "utf-8"           # mislabelled 8-bit mail is mostly UTF-8
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return data.decode(codec if codec != "utf-8" else "latin-1", errors="replace")
    except LookupError:           # a codec that is not a text encoding (e.g. "hex"): read as UTF-8
        return decode_text(data, "utf-8")


def part_text(data: bytes, cte: bytes | str | None, charset: str | None) -> str:
    """The text of one leaf part: transfer encoding undone (leniently), then the charset decoded."""
    return decode_text(undo_transfer_encoding(data, cte) or b"", charset)
