"""Every POP3 reply the server sends, as named constants and small builders.

Owns: the reply text and the RFC 2449 / RFC 3206 response codes
(``[IN-USE]``, ``[LOGIN-DELAY]``, ``[AUTH]``, ``[SYS/TEMP]``). Code and tests
import these names, so a wording change never silently breaks a test.

Must not: contain exception text, passwords or anything from the file system.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One status line: ``+OK text`` or ``-ERR [CODE] text``."""

    ok: bool
    text: str
    code: str | None = None

    def line(self) -> bytes:
        status = "+OK" if self.ok else "-ERR"
        code = f" [{self.code}]" if self.code else ""
        text = f" {self.text}" if self.text else ""
        return f"{status}{code}{text}\r\n".encode("ascii")


def ok(text: str) -> Reply:
    return Reply(True, text)


def err(text: str, code: str | None = None) -> Reply:
    return Reply(False, text, code)


MULTILINE_END = b".\r\n"
SASL_EMPTY_CHALLENGE = b"+ \r\n"
SASL_USERNAME = b"+ VXNlcm5hbWU6\r\n"    # base64("Username:"), what LOGIN clients expect
SASL_PASSWORD = b"+ UGFzc3dvcmQ6\r\n"    # base64("Password:")

GREETING = ok("mailpipe POP3 server ready")
BYE = ok("mailpipe POP3 server signing off")
NOOP = ok("")
CAPA = ok("capability list follows")
AUTH_LIST = ok("SASL mechanisms follow")
USER_ACCEPTED = ok("send PASS")
STLS_BEGIN = ok("begin TLS negotiation")
DELETED = ok("message deleted")

BAD_COMMAND = err("unknown command")
BAD_SYNTAX = err("syntax error")
BAD_STATE = err("command not valid in this state")
LINE_TOO_LONG = err("line too long")
TOO_MANY_ERRORS = err("too many errors, closing connection")
TOO_MANY_COMMANDS = err("too many commands, closing connection")
IDLE_TIMEOUT = err("idle timeout, closing connection (nothing deleted)")
TOO_MANY_CONNECTIONS = err("too many connections, try again later", "SYS/TEMP")
INTERNAL = err("internal server error, closing connection (nothing deleted)", "SYS/TEMP")

NEED_USER = err("send USER first")
NEED_TLS = err("plaintext authentication needs TLS: use STLS first")
STLS_ACTIVE = err("TLS already active")
STLS_UNAVAILABLE = err("TLS not available")
NO_MECHANISM = err("unsupported SASL mechanism")
SASL_CANCELLED = err("authentication cancelled")
SASL_MALFORMED = err("malformed SASL response", "AUTH")
AUTH_FAILED = err("invalid user name or password", "AUTH")
LOCKED_OUT = err("too many failed logins from your address, try again later", "LOGIN-DELAY")
IN_USE = err("maildrop already locked by another POP3 session", "IN-USE")
MAILDROP_UNAVAILABLE = err("maildrop temporarily unavailable, try again later", "SYS/TEMP")

NO_SUCH_MESSAGE = err("no such message")
ALREADY_DELETED = err("message already deleted")
MESSAGE_GONE = err("message was removed by another client")
UPDATE_PARTIAL = err("some deleted messages could not be removed", "SYS/TEMP")


def logged_in(count: int, octets: int) -> Reply:
    return ok(f"maildrop locked and ready, {count} messages ({octets} octets)")


def stat(count: int, octets: int) -> Reply:
    return ok(f"{count} {octets}")


def scan_listing(count: int, octets: int) -> Reply:
    return ok(f"{count} messages ({octets} octets)")


def list_one(number: int, size: int) -> Reply:
    return ok(f"{number} {size}")


def uidl_one(number: int, uidl: str) -> Reply:
    return ok(f"{number} {uidl}")


def uidl_listing() -> Reply:
    return ok("unique-id listing follows")


def message_follows(size: int) -> Reply:
    return ok(f"{size} octets")


def top_follows() -> Reply:
    return ok("top of message follows")


def reset(count: int, octets: int) -> Reply:
    return ok(f"maildrop has {count} messages ({octets} octets)")


def signing_off(remaining: int) -> Reply:
    return ok(f"mailpipe POP3 server signing off ({remaining} messages left)")
