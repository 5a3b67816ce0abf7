"""SASL PLAIN (RFC 4616) and LOGIN decoding for POP3 AUTH (RFC 5034), pure code.

Owns: base64 decoding of client responses and splitting PLAIN's
``authzid NUL authcid NUL passwd``. A response of ``*`` cancels (the caller
checks); ``=`` is an empty initial response.

Must not: check passwords or log anything it decodes.
"""

from __future__ import annotations

import base64
import binascii

MECHANISMS = ("PLAIN", "LOGIN")


class SaslError(ValueError):
    """The client's SASL response is malformed."""


def decode_response(text: str) -> str:
    """Base64 text to a UTF-8 string; ``=`` is the empty response."""
    if text == "=":
        return ""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise SaslError("bad base64 or UTF-8") from None


def plain_credentials(text: str) -> tuple[str, str]:
    """(user, password) from a PLAIN response; authzid must be empty or the user."""
    parts = decode_response(text).split("\x00")
    if len(parts) != 3:
        raise SaslError("PLAIN needs three fields")
    authzid, user, password = parts
    if not user or not password:
        raise SaslError("empty user or password")
    if authzid and authzid != user:
        raise SaslError("authorization identity differs")
    return user, password
