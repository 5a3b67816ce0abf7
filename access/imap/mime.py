"""MIME structure of a stored message, with byte-exact part boundaries (RFC 2045/2046, RFC 3501 6.4.5).

Owns: splitting a message into header and body, multipart bodies into parts
and ``message/rfc822`` bodies into their encapsulated message, without ever
re-encoding anything, so ``BODY[1.2]`` returns the exact stored octets; header
field lookup; decoding of part text and header text for SEARCH.

Must not: render IMAP syntax (see ``access.imap.fetch``) or touch files.
"""

from __future__ import annotations

import binascii
import email.header
import re
import unicodedata
from dataclasses import dataclass, field

from mailpipe.core.mimetext import decode_text, part_text

MAX_DEPTH = 20
MAX_PARTS = 500
_FIELD_RE = re.compile(rb"^([!-9;-~]+)[ \t]*:")


@dataclass
class Part:
    header: bytes                       #: raw header including the blank line that ends it
    body: bytes
    maintype: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    children: list["Part"] = field(default_factory=list)
    message: "Part | None" = None       #: the encapsulated message of message/rfc822
    _fields: list[tuple[str, bytes, bytes]] | None = None

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart"

    def fields(self) -> list[tuple[str, bytes, bytes]]:
        """(lower-case name, unfolded value, raw field lines) in message order."""
        if self._fields is None:
            self._fields = parse_fields(self.header)
        return self._fields

    def get(self, name: str) -> bytes | None:
        name = name.lower()
        for key, value, _raw in self.fields():
            if key == name:
                return value
        return None

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key.lower() == name:
                return value
        return None


def split(data: bytes) -> tuple[bytes, bytes]:
    """(header including the empty line, body)."""
    if data.startswith(b"\r\n"):
        return data[:2], data[2:]
    if data.startswith(b"\n"):
        return data[:1], data[1:]
    idx = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if lf >= 0 and (idx < 0 or lf < idx):
        return data[:lf + 2], data[lf + 2:]
    if idx < 0:
        return data, b""
    return data[:idx + 4], data[idx + 4:]


def parse_fields(header: bytes) -> list[tuple[str, bytes, bytes]]:
    result: list[tuple[str, bytes, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and result:
            name, value, raw = result[-1]
            result[-1] = (name, value + b" " + line.strip(), raw + line)
            continue
        match = _FIELD_RE.match(line)
        if match:
            name = match.group(1).decode("ascii").lower()
            result.append((name, line[match.end():].strip(), line))
    return result


def parse_content_type(value: bytes | None, default: tuple[str, str]) -> tuple[str, str, list[tuple[str, str]]]:
    if not value:
        return (*default, [("charset", "us-ascii")] if default == ("text", "plain") else [])
    text = value.decode("utf-8", "replace")
    items = _split_params(text)
    mtype, _, subtype = items[0].strip().partition("/")
    if not mtype or not subtype:
        return (*default, [("charset", "us-ascii")] if default == ("text", "plain") else [])
    return mtype.strip().lower(), subtype.strip().lower(), _params(items[1:])


def _split_params(text: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def _params(items: list[str]) -> list[tuple[str, str]]:
    params = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params.append((key.strip().lower(), value))
    return params


def parse(data: bytes, default: tuple[str, str] = ("text", "plain"), depth: int = 0,
          budget: list[int] | None = None) -> Part:
    """The MIME tree of `data` (a message or a body part)."""
    budget = budget if budget is not None else [MAX_PARTS]
    header, body = split(data)
    part = Part(header, body)
    mtype, subtype, params = parse_content_type(part.get("content-type"), default)
    part.maintype, part.subtype, part.params = mtype, subtype, params
    budget[0] -= 1
    if depth >= MAX_DEPTH or budget[0] <= 0:
        return part
    if part.is_multipart:
        boundary = part.param("boundary")
        child_default = ("message", "rfc822") if subtype == "digest" else ("text", "plain")
        if boundary:
            part.children = [parse(chunk, child_default, depth + 1, budget)
                             for chunk in split_multipart(body, boundary.encode("utf-8", "replace"))]
    elif (mtype, subtype) == ("message", "rfc822") and body:
        part.message = parse(body, ("text", "plain"), depth + 1, budget)
    return part


def _delimiter_at(body: bytes, delim: bytes, start: int) -> int:
    """Index of the next line starting with `delim` at or after `start`, -1 if none."""
    pos = start
    while True:
        if pos == 0 and body.startswith(delim):
            idx = 0
        else:
            found = body.find(b"\n" + delim, max(pos - 1, 0))
            if found < 0:
                return -1
            idx = found + 1
        tail = body[idx + len(delim): idx + len(delim) + 1]
        if tail in (b"", b"\r", b"\n", b" ", b"\t", b"-"):
            return idx
        pos = idx + 1


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    delim = b"--" + boundary
    parts: list[bytes] = []
    idx = _delimiter_at(body, delim, 0)
    while idx >= 0 and len(parts) < MAX_PARTS:
        after = idx + len(delim)
        if body[after:after + 2] == b"--":
            break
        eol = body.find(b"\n", after)
        if eol < 0:
            break
        start = eol + 1
        nxt = _delimiter_at(body, delim, start)
        if nxt < 0:
            parts.append(body[start:])
            break
        end = nxt
        if end > start and body[end - 1:end] == b"\n":
            end -= 1
            if end > start and body[end - 1:end] == b"\r":
                end -= 1
        parts.append(body[start:end])
        idx = nxt
    return parts


# -- sections (RFC 3501 6.4.5) -------------------------------------------------------

def subpart(root: Part, path: list[int]) -> Part | None:
    """The part named by a section path such as [1, 2]; None if there is none."""
    part = root
    for number in path:
        container = part.message if part.message is not None and not part.is_multipart else part
        if container.is_multipart:
            if number > len(container.children):
                return None
            part = container.children[number - 1]
        elif number == 1:
            part = container
        else:
            return None
    return part


# -- decoding for SEARCH ----------------------------------------------------------------

def normalize(text: str) -> str:
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", text).casefold()


def decode_header_value(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        chunks = email.header.decode_header(text)
    except (ValueError, LookupError, binascii.Error):
        return text
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(decode_text(chunk, charset))
    return "".join(out)


def decoded_body(part: Part) -> str:
    """The text of a leaf part after Content-Transfer-Encoding and charset decoding (``core.mimetext``)."""
    return part_text(part.body, (part.get("content-transfer-encoding") or b"").strip(), part.param("charset"))


def texts(part: Part, depth: int = 0) -> list[str]:
    """Decoded text of every text/* leaf and encapsulated message, for BODY/TEXT search."""
    if depth > MAX_DEPTH:
        return []
    if part.is_multipart:
        return [t for child in part.children for t in texts(child, depth + 1)]
    if part.message is not None:
        headers = [decode_header_value(v) for _k, v, _r in part.message.fields()]
        return headers + texts(part.message, depth + 1)
    if part.maintype == "text" or not part.get("content-type"):
        return [decoded_body(part)]
    return []
