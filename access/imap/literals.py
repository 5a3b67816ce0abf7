"""Large APPEND literals spooled to the user's Maildir ``tmp/`` instead of memory (issue 17.7).

Owns: deciding which literals spill (APPEND, after login, above ``SPILL_OVER``
octets) and the ``LiteralSink`` the parser writes them to: a
``mailstore.mailbox.TmpMessage`` that ``cmd_append`` later renames into place
(``mailbox.add_file``), as the SMTP ingress streams DATA to the spool. Files a
command did not consume are removed after the command and when the
connection ends. A file that cannot be written (disk full, a broken
``tmp/``) is logged in one line and discarded; the literal's remaining
octets are read and dropped, and the command gets a ``Spooled`` without a
path, which APPEND answers ``NO [UNAVAILABLE]``: the connection goes on.

Must not: parse commands (the parser hands over the command text so far) or
decide replies.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from mailpipe.access.imap.grammar import Spooled
from mailpipe.access.imap.parser import LiteralSink
from mailpipe.mailstore.mailbox import TmpMessage

log = logging.getLogger("mailpipe.imap")

SPILL_OVER = 1 << 20     #: octets; smaller literals stay in memory (cheaper, and most messages are)


class FileSink:
    def __init__(self, root: Path, size: int, finished: list[str]) -> None:
        self.root, self.size, self.finished = root, size, finished
        self.tmp: TmpMessage | None = None
        try:
            self.tmp = TmpMessage(root, size)
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        log.error("imap: cannot store an APPEND in %s/tmp: %s", self.root, exc.strerror or exc)
        self.discard()

    def write(self, data: bytes) -> None:
        if self.tmp is None:
            return                  # failed earlier: the octets are read and dropped
        try:
            self.tmp.write(data)
        except OSError as exc:
            self._failed(exc)

    def finish(self) -> Spooled:
        if self.tmp is None:
            return Spooled("", self.size)
        try:
            self.tmp.close()
        except OSError as exc:
            self._failed(exc)
            return Spooled("", self.size)
        self.finished.append(self.tmp.path)     # the command may consume it; else cleanup() removes it
        return Spooled(self.tmp.path, self.size)

    def discard(self) -> None:
        tmp, self.tmp = self.tmp, None
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.discard()


class Spiller:
    """The parser's ``spill`` for one connection; ``cleanup()`` removes what no command consumed."""

    def __init__(self, root_of) -> None:
        self.root_of = root_of          #: () -> the user's Maildir, or None before login
        self.finished: list[str] = []

    def __call__(self, size: int, head: bytes) -> LiteralSink | None:
        root = self.root_of()
        words = head.split(None, 2)
        if root is None or len(words) < 2 or words[1].upper() != b"APPEND":
            return None
        return FileSink(root, size, self.finished)

    def cleanup(self) -> None:
        finished, self.finished = self.finished, []
        for path in finished:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
