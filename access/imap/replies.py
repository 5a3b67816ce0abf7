"""Named IMAP reply texts and the byte form of tagged, untagged and continuation replies.

Code and tests share these constants, so a test asserts ``replies.NO_AUTH``
rather than a string literal. Never put exception text in a reply.

Must not: decide which reply a command gets.
"""

from __future__ import annotations

CAPABILITIES_BASE = ("IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE",
                     "UIDPLUS", "MOVE", "SPECIAL-USE", "UNSELECT", "CHILDREN")
AUTH_MECHS = ("AUTH=PLAIN", "AUTH=LOGIN")

GREETING = "mailpipe IMAP4rev1 ready"
BYE_LOGOUT = "Logging out"
BYE_SHUTDOWN = "Server shutting down"
BYE_TIMEOUT = "Autologout; idle for too long"
BYE_TOO_MANY = "Too many connections"
BYE_UNAVAILABLE = "[UNAVAILABLE] Too many connections, try again later"   #: the server-wide cap (RFC 5530)
BYE_FATAL = "Protocol error, closing"

OK_DONE = "completed"
OK_LOGIN = "Logged in"
OK_STARTTLS = "Begin TLS negotiation now"
OK_IDLE_DONE = "IDLE terminated"
CONT_READY = "Ready"
CONT_IDLING = "idling"

BAD_UNKNOWN = "Unknown command"
BAD_STATE = "Command not allowed in this state"
BAD_SYNTAX = "Syntax error"
BAD_TLS_ACTIVE = "TLS already active"
BAD_NO_TLS = "TLS not available"
BAD_AUTH_CANCELLED = "Authentication cancelled"

NO_AUTH = "[AUTHENTICATIONFAILED] Authentication failed"
NO_LOGIN_DISABLED = "[PRIVACYREQUIRED] Plaintext authentication disallowed without TLS"
NO_LOCKED = "[UNAVAILABLE] Too many failed logins, try again later"
NO_TOO_MANY = "[LIMIT] Too many connections for this user"
NO_MECH = "Unsupported authentication mechanism"
NO_MAILBOX = "[NONEXISTENT] Mailbox does not exist"
NO_EXISTS = "[ALREADYEXISTS] Mailbox already exists"
NO_BAD_NAME = "[CANNOT] Invalid mailbox name"
NO_INBOX_DELETE = "[CANNOT] INBOX cannot be deleted"
NO_TRYCREATE = "[TRYCREATE] Mailbox does not exist"
NO_READ_ONLY = "[READ-ONLY] Mailbox is read-only"
NO_SERVER = "[SERVERBUG] Internal error"
NO_STORE = "[UNAVAILABLE] Cannot store the message now, try again later"   #: tmp/ unwritable, disk full
NO_EXPUNGED = "[EXPUNGEISSUED] Some messages were expunged"
NO_TOO_MANY_KEYWORDS = "[LIMIT] Too many keywords"


def tagged(tag: str, status: str, text: str) -> bytes:
    return f"{tag} {status} {text}\r\n".encode("utf-8", "surrogateescape")


def untagged(text: str | bytes) -> bytes:
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    return b"* " + text + b"\r\n"


def continuation(text: str = CONT_READY) -> bytes:
    return f"+ {text}\r\n".encode()


def capability_line(tls_active: bool, login_allowed: bool, tls_available: bool) -> str:
    caps = list(CAPABILITIES_BASE)
    if tls_available and not tls_active:
        caps.append("STARTTLS")
    if login_allowed:
        caps.extend(AUTH_MECHS)
    else:
        caps.append("LOGINDISABLED")
    return "CAPABILITY " + " ".join(caps)
