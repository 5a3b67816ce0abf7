"""SMTP AUTH (RFC 4954) on top of the shared SASL exchange (``core.sasl``). Pure, sans-I/O.

``SaslExchange.start(mechanism)`` (None for a mechanism we do not offer), then
``step(line)`` with the initial response (or None) and each client line; it
returns a ``334`` challenge to send, an error reply, or the finished
``AuthRequest``. ``*`` cancels (501). Decoding and the authorization-identity
rule are ``core.sasl``'s, the same for IMAP and POP3; this module only maps its
results to SMTP replies. Credentials never appear in replies or in ``repr``.

Must not: check passwords (the shell asks the directory) or decide whether
AUTH is allowed now (the state machine does).
"""

from __future__ import annotations

from mailpipe.core import sasl
from mailpipe.ingress import replies
from mailpipe.ingress.events import AuthRequest

MECHANISMS = sasl.MECHANISMS

FAILURE_REPLIES = {
    sasl.Reason.CANCELLED: replies.AUTH_CANCELLED,
    sasl.Reason.BAD_BASE64: replies.AUTH_BAD_BASE64,
    sasl.Reason.BAD_UTF8: replies.AUTH_BAD_BASE64,
    sasl.Reason.MALFORMED: replies.AUTH_FAILED,
    sasl.Reason.AUTHZID: replies.AUTH_FAILED,
}


class SaslExchange:
    def __init__(self, exchange: sasl.SaslExchange) -> None:
        self._exchange = exchange
        self.mechanism = exchange.mechanism

    def __repr__(self) -> str:
        return f"SaslExchange({self.mechanism})"

    @classmethod
    def start(cls, mechanism: str) -> "SaslExchange | None":
        exchange = sasl.SaslExchange.start(mechanism)
        return cls(exchange) if exchange is not None else None

    def step(self, line: bytes | None) -> str | AuthRequest:
        result = self._exchange.step(line)
        if isinstance(result, sasl.Challenge):
            return f"334 {result.text}"
        if isinstance(result, sasl.Failure):
            return FAILURE_REPLIES[result.reason]
        return AuthRequest(result.user, result.password, authzid=result.authzid)
