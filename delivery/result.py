"""The per-recipient outcome of a relay attempt, shared by the SMTP client, the relay and DSNs.

Owns: ``RecipientResult`` and reading the RFC 3463 enhanced status out of a
reply ("550 5.1.1 No such user" -> "5.1.1"; "451 try later" -> "4.0.0").
Must not: do I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Status = Literal["sent", "deferred", "failed"]
NO_RELAY = "none"

_ENHANCED = re.compile(r"^(?:(\d)\d\d[ -])?\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_CODE = re.compile(r"^([245])\d\d\b")


@dataclass(frozen=True)
class RecipientResult:
    recipient: str
    status: Status
    reply: str            #: remote reply ("250 2.0.0 Ok") or our own diagnostic ("4.4.1 connect to ...")
    relay: str = NO_RELAY  #: "mx.host[1.2.3.4]:25", or "none" when no server answered

    @property
    def enhanced(self) -> str:
        """The enhanced status code for logs and DSNs."""
        return enhanced_status(self.reply, self.status)

    @property
    def remote(self) -> bool:
        """True when ``reply`` came from a remote server (it starts with a 3-digit code)."""
        return bool(_CODE.match(self.reply))


def enhanced_status(reply: str, status: Status) -> str:
    match = _ENHANCED.match(reply)
    if match:
        return f"{match.group(2)}.{match.group(3)}.{match.group(4)}"
    code = _CODE.match(reply)
    if code:
        return f"{code.group(1)}.0.0"
    return {"sent": "2.0.0", "deferred": "4.0.0", "failed": "5.0.0"}[status]
