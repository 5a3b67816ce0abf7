"""A stored message in POP3 wire form (RFC 1939 section 3), pure code.

Owns: turning the stored octets into exactly what RETR and TOP send between
the ``+OK`` line and the terminating ``.``: every line ends in CRLF (a bare LF
becomes CRLF; a missing final line end is added), and every line that starts
with ``.`` gets one more ``.`` (byte-stuffing). ``wire_size`` is the length of
that, which is what LIST and STAT report.

Must not: read files or know message numbers.
"""

from __future__ import annotations

import re

_BARE_LF = re.compile(rb"(?<!\r)\n")
_LINE_START_DOT = re.compile(rb"^\.", re.MULTILINE)


def _clean(data: bytes) -> bool:
    """True when the stored form is already the wire form (the common case)."""
    return (data.endswith(b"\r\n") and not data.startswith(b".") and b"\n." not in data
            and data.count(b"\n") == data.count(b"\r\n"))


def encode(data: bytes) -> bytes:
    """The whole message as RETR sends it, without the final ``.\\r\\n``."""
    if not data or _clean(data):
        return data
    data = _BARE_LF.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LINE_START_DOT.sub(b"..", data)


def encode_sized(data: bytes, size: int) -> bytes:
    """``encode(data)`` when its length is already known to be `size` (from LIST).

    Encoding only ever inserts octets (a CR, a dot, a final CRLF), so a message
    whose wire size equals its stored size needs no change and is not scanned.
    """
    return data if len(data) == size else encode(data)


def wire_size(data: bytes) -> int:
    return len(data) if not data or _clean(data) else len(encode(data))


def top(data: bytes, lines: int) -> bytes:
    """Header, the empty line, and the first `lines` body lines, in wire form (RFC 1939 TOP)."""
    wire = encode(data)
    if wire.startswith(b"\r\n"):
        head_end = 2                      # empty header
    else:
        split = wire.find(b"\r\n\r\n")
        if split < 0:
            return wire                   # no body: the whole message is header
        head_end = split + 4
    body = wire[head_end:]
    pos = 0
    for _ in range(lines):
        nl = body.find(b"\r\n", pos)
        if nl < 0:
            pos = len(body)
            break
        pos = nl + 2
    return wire[:head_end] + body[:pos]
