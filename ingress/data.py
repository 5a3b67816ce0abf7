"""The DATA reader (RFC 5321 4.1.1.4, 4.5.2). Pure, sans-I/O.

Owns: finding the end of a message, dot-unstuffing, and deciding whether the
content is acceptable: size, header size, NUL bytes, bare CR/LF, header
bytes that are not UTF-8.

Smuggling rule (SMTP smuggling, 2023): the ONLY end of data is
``CRLF . CRLF``. A line is what lies between two CRLFs; a bare CR or bare LF
inside it is not a line end, so ``\\n.\\n``, ``\\r.\\n``, ``\\n.\\r\\n`` and
``\\r.\\r\\n`` never end the message, and a message containing any bare CR/LF
is rejected whole (so it is never queued, nor relayed to a server that would
split it). A "second message" hidden that way is just bytes of the first.

Must not: do I/O, or keep more than ``max_size`` bytes of content.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from mailpipe.ingress import replies


_RANK = {reply: rank for rank, reply in enumerate(
    (replies.BARE_NEWLINE, replies.NUL_IN_DATA, replies.BAD_HEADER_BYTES, replies.HEADER_TOO_BIG,
     replies.SIZE_EXCEEDED))}


@dataclass(frozen=True)
class DataResult:
    content: bytes | None      #: the unstuffed message (CRLF line ends), None when rejected
    reply: str | None          #: the rejection reply, None when acceptable
    leftover: bytes            #: bytes received after the terminator (pipelined commands)


TERMINATOR = b"\r\n.\r\n"


class DataReader:
    """Works on blocks, not lines: C-level find/count/replace over whatever arrived, so cost is
    linear in bytes whatever the line structure. Only a possible start of the terminator is held back."""

    def __init__(self, max_size: int, max_header_size: int) -> None:
        self.max_size = max_size
        self.max_header_size = max_header_size
        self._buf = b""
        self._chunks: list[bytes] = []
        self._size = 0
        self._line_start = True
        self._in_header = True
        self._header_size = 0
        self._header_utf8 = codecs.getincrementaldecoder("utf-8")()
        self._problem: str | None = None

    def feed(self, data: bytes) -> DataResult | None:
        """Consume bytes; return the result once ``CRLF.CRLF`` is seen, else None."""
        buf = self._buf + data
        if self._line_start and buf.startswith(b".\r\n"):
            return self._finish(buf[3:])
        end = buf.find(TERMINATOR)
        if end >= 0:
            self._block(buf[:end + 2])
            return self._finish(buf[end + len(TERMINATOR):])
        keep = _held_back(buf, self._line_start)
        self._block(buf[:len(buf) - keep])
        self._buf = buf[len(buf) - keep:]
        return None

    def _block(self, raw: bytes) -> None:
        """Bytes that cannot contain (part of) the terminator; never split inside a CRLF."""
        if not raw:
            return
        if b"\r" in raw or b"\n" in raw:
            crlf = raw.count(b"\r\n")
            if raw.count(b"\r") != crlf or raw.count(b"\n") != crlf:
                self._fail(replies.BARE_NEWLINE)
        if b"\x00" in raw:
            self._fail(replies.NUL_IN_DATA)
        if self._in_header:
            self._header(raw)
        content = raw.replace(b"\r\n.", b"\r\n")
        if self._line_start and content.startswith(b"."):
            content = content[1:]
        self._line_start = raw.endswith(b"\r\n")
        self._store(content)

    def _header(self, raw: bytes) -> None:
        if self._line_start and raw.startswith(b"\r\n"):
            end, part = 0, b""                      # the empty line opens this block
        else:
            end = raw.find(b"\r\n\r\n")
            part = raw if end < 0 else raw[:end + 2]
        self._header_size += len(part)
        if self._header_size > self.max_header_size:
            self._fail(replies.HEADER_TOO_BIG)
        self._decode_header(part, final=end >= 0)
        self._in_header = end < 0

    def _decode_header(self, part: bytes, final: bool = False) -> None:
        """Header bytes must be UTF-8; the incremental decoder sees a split character whole."""
        try:
            self._header_utf8.decode(part, final)
        except UnicodeDecodeError:
            self._fail(replies.BAD_HEADER_BYTES)
            self._header_utf8.reset()

    def _store(self, part: bytes) -> None:
        self._size += len(part)
        if self._size > self.max_size:
            self._fail(replies.SIZE_EXCEEDED)
        if self._problem is None:
            self._chunks.append(part)
        else:
            self._chunks.clear()

    def _fail(self, reply: str) -> None:
        """Keep the most telling problem, so the verdict never depends on how bytes were chunked."""
        if self._problem is None or _RANK[reply] < _RANK[self._problem]:
            self._problem = reply

    def _finish(self, leftover: bytes) -> DataResult:
        if self._in_header:
            self._decode_header(b"", final=True)
        if self._problem is not None:
            return DataResult(None, self._problem, leftover)
        return DataResult(b"".join(self._chunks), None, leftover)


def _held_back(buf: bytes, line_start: bool) -> int:
    """How many trailing bytes might begin the terminator (or ".CRLF" right at a line start)."""
    if line_start and len(buf) < 3 and b".\r\n".startswith(buf):
        return len(buf)
    for size in range(len(TERMINATOR) - 1, 0, -1):
        if buf.endswith(TERMINATOR[:size]):
            return size
    return 0
