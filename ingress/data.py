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

from ingress import replies


_RANK = {reply: rank for rank, reply in enumerate(
    (replies.BARE_NEWLINE, replies.NUL_IN_DATA, replies.BAD_HEADER_BYTES, replies.HEADER_TOO_BIG,
     replies.SIZE_EXCEEDED))}


@dataclass(frozen=True)
class DataResult:
    content: bytes | None      #: the unstuffed message (CRLF line ends), None when rejected
    reply: str | None          #: the rejection reply, None when acceptable
    leftover: bytes            #: bytes received after the terminator (pipelined commands)


class DataReader:
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
        self._buf += data
        while True:
            index = self._buf.find(b"\r\n")
            if index < 0:
                self._consume_partial()
                return None
            line, self._buf = self._buf[:index], self._buf[index + 2:]
            if self._line_start and line == b".":
                return self._finish()
            self._add(line, complete=True)

    def _consume_partial(self) -> None:
        """Pass on bytes of an unfinished line, keeping what could still start ``.CRLF`` or CRLF."""
        keep = 1 if self._buf.endswith(b"\r") else 0
        if self._line_start and self._buf.startswith(b".") and len(self._buf) < 3:
            keep = len(self._buf)
        cut = len(self._buf) - keep
        if cut > 0:
            part, self._buf = self._buf[:cut], self._buf[cut:]
            self._add(part, complete=False)

    def _add(self, part: bytes, *, complete: bool) -> None:
        if self._line_start and part.startswith(b"."):
            part = part[1:]
        self._check(part)
        if complete:
            if self._in_header and self._line_start and not part:
                self._end_header()
            part += b"\r\n"
        if self._in_header:
            self._header_size += len(part)
            if self._header_size > self.max_header_size:
                self._fail(replies.HEADER_TOO_BIG)
            self._decode_header(part)
        self._line_start = complete
        self._store(part)

    def _check(self, part: bytes) -> None:
        if b"\r" in part or b"\n" in part:
            self._fail(replies.BARE_NEWLINE)
        if b"\x00" in part:
            self._fail(replies.NUL_IN_DATA)

    def _decode_header(self, part: bytes, final: bool = False) -> None:
        """Header bytes must be UTF-8; the incremental decoder sees a split character whole."""
        try:
            self._header_utf8.decode(part, final)
        except UnicodeDecodeError:
            self._fail(replies.BAD_HEADER_BYTES)
            self._header_utf8.reset()

    def _end_header(self) -> None:
        self._in_header = False
        self._decode_header(b"", final=True)

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

    def _finish(self) -> DataResult:
        if self._in_header:
            self._end_header()
        if self._problem is not None:
            return DataResult(None, self._problem, self._buf)
        return DataResult(b"".join(self._chunks), None, self._buf)
