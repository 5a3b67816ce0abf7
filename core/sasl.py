"""SASL PLAIN (RFC 4616) and LOGIN exchanges, shared by SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH.

Pure and sans-I/O: ``SaslExchange.start(mechanism)`` (None for a mechanism we
do not offer), then ``step(response)`` with the initial response (or None for
"none given") and each client response line. A step returns one of

- ``Challenge(text)``: send this base64 challenge ("" for PLAIN's empty one);
- ``Credentials(user, password)``: the exchange is complete;
- ``Failure(reason)``: the exchange is over; the protocol maps the reason
  (``CANCELLED``, ``BAD_BASE64``, ``BAD_UTF8``, ``MALFORMED``, ``AUTHZID``) to
  its own reply.

Authorization identity (one rule for every protocol): an authzid that is empty
or names the same account as the authcid (compared case-insensitively, a
trailing dot ignored) is allowed; any other authzid is refused (``AUTHZID``)
before any password is checked, since no account may act as another.

A response of ``*`` cancels (RFC 4954 4, RFC 5034 4, RFC 3501 6.2.2); ``=`` is an
empty initial response. Responses must be base64 of UTF-8 text.

Must not: check passwords, log, or keep what it decoded beyond the exchange;
credentials never appear in ``repr``.
"""

from __future__ import annotations

import binascii
import enum
from base64 import b64decode
from dataclasses import dataclass, field

MECHANISMS = ("PLAIN", "LOGIN")
LOGIN_USER_PROMPT = "VXNlcm5hbWU6"       # base64 "Username:"
LOGIN_PASSWORD_PROMPT = "UGFzc3dvcmQ6"   # base64 "Password:"


class Reason(enum.Enum):
    CANCELLED = "cancelled"       # the client sent "*"
    BAD_BASE64 = "bad base64"
    BAD_UTF8 = "not UTF-8"
    MALFORMED = "malformed"       # PLAIN without three fields, or an empty user name
    AUTHZID = "authzid refused"   # authorization identity names another account


@dataclass(frozen=True)
class Challenge:
    text: str                     # base64, without the protocol's prefix ("334 ", "+ ")


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)
    authzid: str = ""


@dataclass(frozen=True)
class Failure:
    reason: Reason


Step = Challenge | Credentials | Failure


class SaslError(ValueError):
    """A response that cannot be decoded; ``reason`` says why."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


def decode_response(data: bytes | str) -> str:
    """One base64 client response to text; ``=`` is the empty response. Raises SaslError."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    raw = raw.strip()
    if raw == b"=":
        return ""
    try:
        decoded = b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError(Reason.BAD_BASE64) from None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(Reason.BAD_UTF8) from None


def same_identity(authzid: str, authcid: str) -> bool:
    """The rule for the authorization identity: empty, or the authcid's own account."""
    return not authzid or _fold(authzid) == _fold(authcid)


def plain_credentials(message: str) -> Credentials:
    """PLAIN: ``[authzid] NUL authcid NUL passwd`` (RFC 4616 2), with the authzid rule applied."""
    parts = message.split("\x00")
    if len(parts) != 3 or not parts[1]:
        raise SaslError(Reason.MALFORMED)
    authzid, user, password = parts
    if not same_identity(authzid, user):
        raise SaslError(Reason.AUTHZID)
    return Credentials(user, password, authzid)


def _fold(identity: str) -> str:
    return identity.strip().rstrip(".").casefold()


class SaslExchange:
    """One PLAIN or LOGIN exchange."""

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self._user: str | None = None     # LOGIN: the user name, once given
        self.done = False

    def __repr__(self) -> str:
        return f"SaslExchange({self.mechanism}, done={self.done})"

    @classmethod
    def start(cls, mechanism: str) -> "SaslExchange | None":
        mechanism = mechanism.upper()
        return cls(mechanism) if mechanism in MECHANISMS else None

    def first_challenge(self) -> Challenge:
        return Challenge("" if self.mechanism == "PLAIN" else LOGIN_USER_PROMPT)

    def step(self, response: bytes | str | None) -> Step:
        """Feed the initial response (None: none was given) or one client line."""
        if response is None:
            return self.first_challenge()
        text = response.decode("ascii", "replace") if isinstance(response, bytes) else response
        if text.strip() == "*":
            return self._end(Failure(Reason.CANCELLED))
        try:
            value = decode_response(response)
            if self.mechanism == "PLAIN":
                return self._end(plain_credentials(value))
        except SaslError as exc:
            return self._end(Failure(exc.reason))
        if self._user is None:
            if not value:
                return self._end(Failure(Reason.MALFORMED))
            self._user = value
            return Challenge(LOGIN_PASSWORD_PROMPT)
        return self._end(Credentials(self._user, value))

    def _end(self, result: Step) -> Step:
        self.done = True
        self._user = None
        return result
