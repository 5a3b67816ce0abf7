"""BDAT content (RFC 3030 CHUNKING): collect the chunks of one message and judge it. Pure, sans-I/O.

BDAT framing is by length, so nothing inside a chunk can end the message;
but the content must still pass the same checks as DATA content (bare CR
or LF, NUL, header bytes and size, message size), so that a message that
could be split by a DATA-speaking next hop is never accepted this way
either. Over-size content is counted, not kept.

Must not: do I/O. The state machine hands over exactly the announced bytes.
"""

from __future__ import annotations

from mailpipe.ingress import replies
from mailpipe.ingress.data import DataResult


class ChunkCollector:
    def __init__(self, max_size: int, max_header_size: int) -> None:
        self.max_size, self.max_header_size = max_size, max_header_size
        self._parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size <= self.max_size:
            self._parts.append(data)
        else:
            self._parts.clear()

    def finish(self) -> DataResult:
        if self.size > self.max_size:
            return DataResult(None, replies.SIZE_EXCEEDED, b"")
        content = b"".join(self._parts)
        problem = check_content(content, self.max_header_size)
        return DataResult(None if problem else content, problem, b"")


def check_content(content: bytes, max_header_size: int) -> str | None:
    """The rejection reply for a whole message, or None (same rules as ``ingress.data``)."""
    crlf = content.count(b"\r\n")
    if content.count(b"\r") != crlf or content.count(b"\n") != crlf:
        return replies.BARE_NEWLINE
    if b"\x00" in content:
        return replies.NUL_IN_DATA
    end = content.find(b"\r\n\r\n")
    header = content if end < 0 else content[:end + 2]
    try:
        header.decode("utf-8")
    except UnicodeDecodeError:
        return replies.BAD_HEADER_BYTES
    if len(header) > max_header_size:
        return replies.HEADER_TOO_BIG
    return None
