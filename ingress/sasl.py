"""One SASL exchange of SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN. Pure, sans-I/O.

``SaslExchange.start(mechanism)`` (None for a mechanism we do not offer), then
``step(line)`` with the initial response (or None) and each client line; it
returns a ``334`` challenge to send, an error reply, or the finished
``AuthRequest``. ``*`` cancels (501). Credentials never appear in replies
or in ``repr``.

Must not: check passwords (the shell asks the directory) or decide whether
AUTH is allowed now (the state machine does).
"""

from __future__ import annotations

import binascii
from base64 import b64decode

from mailpipe.ingress import replies
from mailpipe.ingress.events import AuthRequest

MECHANISMS = ("PLAIN", "LOGIN")
LOGIN_PROMPTS = ("334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6")     # "Username:", "Password:"


class SaslExchange:
    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.answers: list[str] = []

    def __repr__(self) -> str:
        return f"SaslExchange({self.mechanism}, {len(self.answers)} answers)"

    @classmethod
    def start(cls, mechanism: str) -> "SaslExchange | None":
        mechanism = mechanism.upper()
        return cls(mechanism) if mechanism in MECHANISMS else None

    def step(self, line: bytes | None) -> str | AuthRequest:
        if line is None:
            return self._challenge()
        if line == b"*":
            return replies.AUTH_CANCELLED
        try:
            decoded = "" if line == b"=" else b64decode(line, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return replies.AUTH_BAD_BASE64
        self.answers.append(decoded)
        if self.mechanism == "LOGIN":
            return self._challenge() if len(self.answers) < 2 else AuthRequest(*self.answers)
        return _plain(decoded)

    def _challenge(self) -> str:
        return "334 " if self.mechanism == "PLAIN" else LOGIN_PROMPTS[len(self.answers)]


def _plain(message: str) -> str | AuthRequest:
    """PLAIN: ``[authzid] NUL authcid NUL passwd`` (RFC 4616 2)."""
    parts = message.split("\x00")
    if len(parts) != 3 or not parts[1]:
        return replies.AUTH_FAILED
    return AuthRequest(parts[1], parts[2], authzid=parts[0])
