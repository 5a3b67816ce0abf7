"""Typed values exchanged between the SMTP core and its I/O shell: settings, session, envelope,
outputs (replies, STARTTLS, close) and requests the shell must answer. Frozen where they can be.

Must not: hold behaviour; the state machine lives in ``ingress.protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    hostname: str
    max_size: int
    max_header_size: int = 1024 * 1024
    max_recipients: int = 100
    max_line: int = 1000
    max_errors: int = 10
    max_messages: int = 1000
    tls_available: bool = False        #: STARTTLS may be offered (a context exists, not yet active)
    plaintext_auth: bool = False       #: password auth allowed without TLS (loopback + config)
    auth_required: bool = False        #: submission: MAIL needs AUTH first


@dataclass
class Session:
    """The connection (names as aiosmtpd's, which ``ingress.server`` relies on)."""
    peer: tuple | None = None
    host_name: str | None = None
    extended_smtp: bool = False
    ssl: bool = False
    authenticated: bool = False
    auth_data: str | None = None       #: the canonical address after AUTH


@dataclass
class Envelope:
    """One mail transaction."""
    mail_from: str | None = None
    mail_options: tuple = ()
    smtputf8: bool = False
    rcpt_tos: list[str] = field(default_factory=list)
    rcpt_options: list[tuple] = field(default_factory=list)
    original_content: bytes | None = None


@dataclass(frozen=True)
class Reply:
    text: str


@dataclass(frozen=True)
class StartTls:
    pass


@dataclass(frozen=True)
class Close:
    pass


@dataclass(frozen=True)
class AuthRequest:
    username: str
    password: str = field(repr=False)
    authzid: str = ""


@dataclass(frozen=True)
class MailRequest:
    address: str
    params: tuple


@dataclass(frozen=True)
class RcptRequest:
    address: str
    params: tuple


@dataclass(frozen=True)
class MessageRequest:
    envelope: Envelope


Output = Reply | StartTls | Close | AuthRequest | MailRequest | RcptRequest | MessageRequest
Request = AuthRequest | MailRequest | RcptRequest | MessageRequest
