"""Socket, TLS and file-system errors as a person would write them, for logs and deferral reasons.

Owns: ``say(exc)``: ``timed out``, ``connection refused``, ``certificate verification
failed (...)``, ``no space left on device``... from the exception's meaning, never its
class name (``TimeoutError``, ``SSLCertVerificationError``), so that ``queue list`` and
the log read like Postfix's.

Must not: be used for client replies (those come from named reply constants), or
include paths of the server's own files beyond what the exception itself names.
"""

from __future__ import annotations

import socket
import ssl


def say(exc: BaseException) -> str:
    """What went wrong, in lower-case words."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    if isinstance(exc, (EOFError, ConnectionError)):
        return "connection closed"
    return "connection error"
