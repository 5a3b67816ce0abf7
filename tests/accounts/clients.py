"""Real clients (smtplib, imaplib, poplib) for the account tests: each returns the server's answer as text."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from base64 import b64encode

TIMEOUT = 20.0


def _b64(text: str) -> str:
    return b64encode(text.encode("utf-8", "surrogateescape")).decode("ascii")


def imap_login(port: int, user: str, password: str) -> str:
    """"OK", or the tagged NO's text."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as client:
        try:
            client.login(user, password)
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return "OK"


def imap_login_raw(port: int, user: bytes, password: bytes) -> bytes:
    """LOGIN with literal octets (any bytes); the tagged reply line."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as client:
        sock = client.socket()
        sock.sendall(b"a1 LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(password), password))
        while True:
            line = client.readline()
            if line.startswith(b"a1 ") or not line:
                return line.rstrip(b"\r\n")


def imap_plain(port: int, authzid: str, user: str, password: str) -> str:
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as client:
        try:
            client.authenticate("PLAIN", lambda _c: f"{authzid}\0{user}\0{password}".encode())
        except imaplib.IMAP4.error as exc:
            return str(exc)
        return "OK"


def smtp_auth(port: int, user: str, password: str, authzid: str = "") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.ehlo("client.example")
        return client.docmd("AUTH", "PLAIN " + _b64(f"{authzid}\0{user}\0{password}"))


def smtp_rcpt(port: int, recipient: str, user: str | None = None, password: str = "",
              sender: str = "") -> tuple[int, bytes]:
    """RCPT TO's answer, after AUTH as `user` (if given, and it must succeed) and MAIL FROM."""
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.ehlo("client.example")
        if user is not None:
            code, text = client.docmd("AUTH", "PLAIN " + _b64(f"\0{user}\0{password}"))
            if code != 235:
                return code, text
        code, text = client.mail(sender)
        if code != 250:
            return code, text
        return client.rcpt(recipient)


def pop3_login(port: int, user: str, password: str) -> str:
    """"+OK", or the -ERR line."""
    client = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    try:
        client.user(user)
        client.pass_(password)
        return "+OK"
    except poplib.error_proto as exc:
        return exc.args[0].decode("utf-8", "replace")
    finally:
        _quit(client)


def pop3_raw(port: int, *lines: bytes) -> list[bytes]:
    """Send raw command lines; the first reply line to each."""
    client = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    try:
        answers = []
        for line in lines:
            client.sock.sendall(line + b"\r\n")
            answers.append(client._getline()[0])
        return answers
    finally:
        _quit(client)


def pop3_plain(port: int, authzid: str, user: str, password: str) -> str:
    client = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    try:
        return client._shortcmd("AUTH PLAIN " + _b64(f"{authzid}\0{user}\0{password}")).decode()
    except poplib.error_proto as exc:
        return exc.args[0].decode("utf-8", "replace")
    finally:
        _quit(client)


def _quit(client: poplib.POP3) -> None:
    try:
        client.quit()
    except (poplib.error_proto, OSError):
        client.close()
