"""Errors of the remote relay, as subclasses of the ``core.errors`` tree.

Owns: the exceptions that ``delivery.mx`` and ``delivery.smtp_client`` raise
after translating dnspython, socket and ssl errors at their boundary::

    TransientError
    ├── TemporaryDnsError     SERVFAIL, timeout, no answer from any nameserver -> deferred
    └── SmtpConnectError      connect refused/timeout, 4xx/5xx greeting, TLS failure -> next MX
    PermanentError
    └── PermanentDnsError     NXDOMAIN, null MX (5.1.10), no usable host        -> failed

Each carries ``status`` (the RFC 3463 enhanced code used in DSNs and logs).
Must not: hold SMTP reply text for a client; these are for logs and DSNs only.
"""

from __future__ import annotations

from mailpipe.core.errors import PermanentError, TransientError


class TemporaryDnsError(TransientError):
    """The DNS could not answer now (SERVFAIL, timeout); retry later."""

    status = "4.4.3"


class PermanentDnsError(PermanentError):
    """The domain cannot receive mail (NXDOMAIN, null MX, no host)."""

    def __init__(self, message: str, status: str = "5.1.2") -> None:
        super().__init__(message)
        self.status = status


class SmtpConnectError(TransientError):
    """One MX host could not be used (refused, timed out, bad greeting, TLS); try the next."""

    status = "4.4.1"

    def __init__(self, message: str, *, refused: bool = False, status: str = "4.4.1") -> None:
        super().__init__(message)
        self.refused = refused
        self.status = status
