"""Queue IDs: short, unique, sortable by creation time, safe as file names.

A queue ID is 16 characters of Crockford base32: 10 for the creation time in
microseconds and 6 random. Only ``[0-9A-Z]`` occurs, so an ID that passes
``is_queue_id`` can be joined to a path without traversal risk.
"""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{16}$")


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_queue_id(now: float | None = None) -> str:
    micros = int((time.time() if now is None else now) * 1_000_000)
    return _encode(micros, 10) + _encode(secrets.randbits(30), 6)


def is_queue_id(value: str) -> bool:
    return bool(_ID_RE.match(value))
