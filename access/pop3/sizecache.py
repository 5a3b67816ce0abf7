"""Remembered POP3 wire sizes per message base, in ``<Maildir>/pop3.sizes``.

LIST and STAT must report the octets RETR sends (CRLF, dot-stuffed), which
needs the whole file read. Maildir messages never change once delivered, so
the size of a base is computed once and kept here; a POP3 login then reads only
this file instead of every message. The cache is written only under the POP3
maildrop lock, atomically (temporary file + rename), and only when it changed.
A damaged cache is ignored and rebuilt, never trusted for anything but sizes.

Must not: be read by anything other than the POP3 maildrop.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_NAME = "pop3.sizes"
_MAX_BYTES = 64 * 1024 * 1024


class SizeCache:
    def __init__(self, path: Path, sizes: dict[str, int]) -> None:
        self.path = path
        self.sizes = sizes
        self.changed = False

    @classmethod
    def load(cls, root: Path) -> "SizeCache":
        path = root / CACHE_NAME
        try:
            if path.stat().st_size > _MAX_BYTES:
                return cls(path, {})
            text = path.read_text("utf-8", errors="surrogateescape")
        except OSError:
            return cls(path, {})
        return cls(path, _parse(text))

    def get(self, base: str) -> int | None:
        return self.sizes.get(base)

    def put(self, base: str, size: int) -> None:
        if "\t" in base or "\n" in base:
            return
        self.sizes[base] = size
        self.changed = True

    def save(self, present: list[str]) -> None:
        """Keep only the bases still `present`; write if anything changed (errors ignored)."""
        keep = {b: self.sizes[b] for b in present if b in self.sizes}
        if not self.changed and len(keep) == len(self.sizes):
            return
        tmp = self.path.with_name(CACHE_NAME + ".tmp")
        text = "".join(f"{base}\t{size}\n" for base, size in keep.items())
        try:
            tmp.write_text(text, "utf-8", errors="surrogateescape")
            os.replace(tmp, self.path)
        except OSError:
            return
        self.sizes, self.changed = keep, False


def _parse(text: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for line in text.splitlines():
        base, sep, size = line.rpartition("\t")
        if sep and base and size.isdigit():
            sizes[base] = int(size)
    return sizes
