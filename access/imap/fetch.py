"""FETCH: parsing the attribute list and rendering ENVELOPE, BODYSTRUCTURE and BODY[section].

Owns: the ``fetch-att`` grammar of RFC 3501 section 9 (macros ALL/FAST/FULL,
``BODY[section]<partial>``, ``BODY.PEEK``, RFC822.*), and the byte form of
each data item. Input is a parsed ``mime.Part`` plus the facts the session
knows (UID, flags, size, internal date).

Must not: touch files or decide on \\Seen (the session does that).
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass

from mailpipe.access.imap import mime
from mailpipe.access.imap.grammar import Atom, Syntax, quote

MACROS = {"ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
          "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
          "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")}
SIMPLE = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID",
          "RFC822", "RFC822.HEADER", "RFC822.TEXT"}
# section-spec = section-msgtext / (section-part ["." section-text]); section-part = nz-number *("." nz-number)
_SECTION_RE = re.compile(
    r"^(BODY|BODY\.PEEK)\[([^\]]*)\](?:<(\d+)(?:\.(\d+))?>)?$", re.I)
_TEXTS = ("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")


@dataclass(frozen=True)
class Section:
    path: tuple[int, ...]
    text: str                   # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...]
    origin: int | None
    length: int | None
    peek: bool

    def label(self) -> str:
        parts = [".".join(map(str, self.path))] if self.path else []
        if self.text:
            parts.append(self.text)
        spec = ".".join(parts)
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        origin = f"<{self.origin}>" if self.origin is not None else ""
        return f"BODY[{spec}]{origin}"


def parse_items(args: tuple) -> tuple[list, int]:
    """(items, NEED_* of the file) from the FETCH argument list; items are names or Sections."""
    if len(args) != 1:
        raise Syntax("FETCH takes one item or a list")
    raw = args[0] if isinstance(args[0], list) else [args[0]]
    if isinstance(args[0], Atom) and args[0].upper in MACROS:
        raw = [Atom(n) for n in MACROS[args[0].upper]]
    items = []
    for token in raw:
        if not isinstance(token, Atom):
            raise Syntax("invalid FETCH item")
        items.append(_item(token.value))
    if not items:
        raise Syntax("empty FETCH list")
    return items, _need(items)


NEED_NONE, NEED_HEADER, NEED_FULL = 0, 1, 2


def _need(items: list) -> int:
    """How much of the file the items read: nothing, the top-level header, or everything."""
    need = NEED_NONE
    for item in items:
        if item in ("FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE"):
            continue
        header_only = item in ("ENVELOPE", "RFC822.HEADER") or (
            isinstance(item, Section) and not item.path and item.text.startswith("HEADER"))
        need = max(need, NEED_HEADER if header_only else NEED_FULL)
    return need


def _spec(spec: str) -> tuple[tuple[int, ...], str, tuple[str, ...]]:
    """section-spec = section-msgtext / (section-part ["." section-text])."""
    head, _, rest = spec.partition(" ")
    fields: tuple[str, ...] = ()
    if rest:
        if not (rest.startswith("(") and rest.endswith(")")):
            raise Syntax("invalid section")
        fields = tuple(f.upper() for f in rest[1:-1].replace('"', "").split())
    pieces = head.split(".") if head else []
    path = []
    while pieces and pieces[0].isdigit():
        if int(pieces[0]) == 0:
            raise Syntax("invalid section")
        path.append(int(pieces.pop(0)))
    text_part = ".".join(pieces).upper()
    if text_part not in _TEXTS or text_part.startswith("HEADER.FIELDS") != bool(fields) \
            or (text_part == "MIME" and not path):
        raise Syntax("invalid section")
    if rest and not fields:
        raise Syntax("invalid section")
    return tuple(path), text_part, fields


def _item(text: str):
    upper = text.upper()
    if upper in SIMPLE:
        return upper
    match = _SECTION_RE.match(text)
    if not match:
        raise Syntax("invalid FETCH item")
    path, text_part, fields = _spec(match.group(2).strip())
    origin = int(match.group(3)) if match.group(3) is not None else None
    length = int(match.group(4)) if match.group(4) is not None else None
    if origin is not None and length is None:
        raise Syntax("partial needs <origin.length>")
    return Section(path, text_part, fields, origin, length, "PEEK" in match.group(1).upper())


# -- rendering -----------------------------------------------------------------------

def section_bytes(root: mime.Part, whole: bytes, section: Section) -> bytes | None:
    if not section.path and not section.text:
        return whole
    part = mime.subpart(root, list(section.path)) if section.path else root
    if part is None:
        return None
    if section.text == "MIME":
        return part.header
    if not section.text:
        return part.body
    msg = part if not section.path else part.message
    if msg is None:
        return None
    if section.text == "TEXT":
        return msg.body
    if section.text == "HEADER":
        return msg.header
    return header_fields(msg, section.fields, section.text.endswith(".NOT"))


def header_fields(part: mime.Part, names: tuple[str, ...], exclude: bool) -> bytes:
    wanted = {n.lower() for n in names}
    lines = [raw for name, _v, raw in part.fields() if (name in wanted) != exclude]
    return b"".join(lines) + b"\r\n"


def partial(data: bytes, section: Section) -> bytes:
    if section.origin is None:
        return data
    end = None if section.length is None else section.origin + section.length
    return data[section.origin:end]


def internaldate(ts: float) -> bytes:
    tm = time.localtime(ts)
    offset = tm.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    stamp = time.strftime("%d-%b-%Y %H:%M:%S", tm)
    return f'"{stamp} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"'.encode()


def envelope(part: mime.Part) -> bytes:
    """ENVELOPE: date subject from sender reply-to to cc bcc in-reply-to message-id."""
    get = part.get
    sender_default = get("from")
    items = [quote(get("date")), quote(get("subject")), _addresses(get("from")),
             _addresses(get("sender") or sender_default), _addresses(get("reply-to") or sender_default),
             _addresses(get("to")), _addresses(get("cc")), _addresses(get("bcc")),
             quote(get("in-reply-to")), quote(get("message-id"))]
    return b"(" + b" ".join(items) + b")"


# the common shapes: addr-spec, or display-name "<" addr-spec ">", without quotes, comments or groups
_SIMPLE_ADDR = re.compile(r"^\s*(?:([^\"(),:;<>@\[\]\\]*?)\s*<([^<>\s\"(),:;@]+@[^<>\s\"(),:;@]+)>|([^<>\s\"(),:;@]+@[^<>\s\"(),:;@]+))\s*$")


def _parse_addresses(text: str) -> list[tuple[str, str]]:
    match = _SIMPLE_ADDR.match(text)
    if match:
        return [(match.group(1) or "", match.group(2) or match.group(3))]
    return email.utils.getaddresses([text])


def _addresses(value: bytes | None) -> bytes:
    if not value:
        return b"NIL"
    text = value.decode("utf-8", "surrogateescape")
    out = []
    for name, addr in _parse_addresses(text):
        if not addr and not name:
            continue
        local, at, host = addr.rpartition("@")
        if not at:
            local, host = addr, ""
        out.append(b"(" + b" ".join([quote(name or None), b"NIL", quote(local or None),
                                     quote(host or None)]) + b")")
    return b"(" + b"".join(out) + b")" if out else b"NIL"


def _plist(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(quote(k) + b" " + quote(v) for k, v in params) + b")"


def _disposition(part: mime.Part) -> bytes:
    value = part.get("content-disposition")
    if not value:
        return b"NIL"
    items = mime._split_params(value.decode("utf-8", "replace"))
    return b"(" + quote(items[0].strip().lower()) + b" " + _plist(mime._params(items[1:])) + b")"


def _ext_tail(part: mime.Part) -> list[bytes]:
    return [_disposition(part), quote(part.get("content-language")), quote(part.get("content-location"))]


def bodystructure(part: mime.Part, extended: bool = True) -> bytes:
    if part.is_multipart:
        if not part.children:
            return b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
        kids = b"".join(bodystructure(c, extended) for c in part.children)
        items = [kids, quote(part.subtype)]
        if extended:
            items += [_plist(part.params), *_ext_tail(part)]
        return b"(" + b" ".join(items) + b")"
    cte = part.get("content-transfer-encoding")
    items = [quote(part.maintype), quote(part.subtype), _plist(part.params),
             quote(part.get("content-id")), quote(part.get("content-description")),
             quote(cte.decode("ascii", "replace").upper() if cte else "7BIT"),
             str(len(part.body)).encode()]
    if part.message is not None:
        items += [envelope(part.message), bodystructure(part.message, extended)]
    if part.maintype == "text" or part.message is not None:
        items.append(str(part.body.count(b"\n")).encode())
    if extended:
        items += [quote(part.get("content-md5")), *_ext_tail(part)]
    return b"(" + b" ".join(items) + b")"
