"""STARTTLS and implicit TLS with trustme certificates; LOGINDISABLED for non-loopback plaintext."""

from __future__ import annotations

import imaplib
import ssl

import pytest

from mailpipe.access.imap import replies
from mailpipe.access.imap.grammar import Atom
from mailpipe.access.imap.limits import Registry
from mailpipe.access.imap.parser import Command
from mailpipe.access.imap.session import Env, Session
from mailpipe.core.authlimit import FailureLimiter
from mailpipe.core.clock import FakeClock
from tests.imap.conftest import PASSWORD, USER, Server, make_message


@pytest.fixture
def tls_server(tmp_path):
    srv = Server(tmp_path, tls=True)
    yield srv
    srv.stop()


def _context(srv) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    srv.ca.configure_trust(ctx)
    return ctx


def test_starttls_then_login(tls_server):
    tls_server.deliver(make_message())
    client = imaplib.IMAP4("127.0.0.1", tls_server.port, timeout=10)
    assert "STARTTLS" in client.capabilities
    typ, _ = client.starttls(_context(tls_server))
    assert typ == "OK"
    assert "STARTTLS" not in client.capabilities
    client.login(USER, PASSWORD)
    assert client.select("INBOX") == ("OK", [b"1"])
    client.logout()


def test_implicit_tls(tls_server):
    client = imaplib.IMAP4_SSL("127.0.0.1", tls_server.tls_port, ssl_context=_context(tls_server), timeout=10)
    client.login(USER, PASSWORD)
    assert client.list()[0] == "OK"
    client.logout()


class _Directory:
    def authenticate(self, user, password):
        return "alice@example.test" if password == "pw" else None


def _session(tmp_path, peer: str, tls_active: bool = False) -> Session:
    from mailpipe.core.config import Config
    config = Config(data_dir=tmp_path, imap={"port": 0, "tls_port": 0})
    env = Env(config, _Directory(), FailureLimiter(2, 60, FakeClock()), Registry(1, 10), peer, True, tls_active)
    return Session(env)


def test_remote_plaintext_is_logindisabled(tmp_path):
    session = _session(tmp_path, "192.0.2.7")
    assert b"LOGINDISABLED" in session.greeting() and b"AUTH=PLAIN" not in session.greeting()
    out = session.handle(Command("a", "LOGIN", (Atom("alice@example.test"), Atom("pw"))))
    assert out.data == replies.tagged("a", "NO", replies.NO_LOGIN_DISABLED)
    out = session.handle(Command("b", "AUTHENTICATE", (Atom("PLAIN"),)))
    assert out.data == replies.tagged("b", "NO", replies.NO_LOGIN_DISABLED)
    tls = _session(tmp_path, "192.0.2.7", tls_active=True)
    assert tls.handle(Command("a", "LOGIN", (Atom("alice@example.test"), Atom("pw")))).data.startswith(b"a OK")


def test_failed_logins_are_delayed_then_locked(tmp_path):
    session = _session(tmp_path, "127.0.0.1")
    first = session.handle(Command("a", "LOGIN", (Atom("alice@example.test"), Atom("bad"))))
    assert first.data == replies.tagged("a", "NO", replies.NO_AUTH) and first.delay > 0
    session.handle(Command("b", "LOGIN", (Atom("alice@example.test"), Atom("bad"))))
    locked = session.handle(Command("c", "LOGIN", (Atom("alice@example.test"), Atom("pw"))))
    assert locked.data == replies.tagged("c", "NO", replies.NO_LOCKED)


def test_connections_per_user_limited(tmp_path):
    first, second = _session(tmp_path, "127.0.0.1"), None
    assert first.handle(Command("a", "LOGIN", (Atom("alice@example.test"), Atom("pw")))).data.startswith(b"a OK")
    second = Session(first.env)
    out = second.handle(Command("a", "LOGIN", (Atom("alice@example.test"), Atom("pw"))))
    assert out.data == replies.tagged("a", "NO", replies.NO_TOO_MANY)
    first.close()
    assert second.handle(Command("b", "LOGIN", (Atom("alice@example.test"), Atom("pw")))).data.startswith(b"b OK")


def test_starttls_discards_pipelined_plaintext(tls_server):
    import socket
    sock = socket.create_connection(("127.0.0.1", tls_server.port), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"a STARTTLS\r\nb LOGIN alice@example.test pw\r\n")
    assert reader.readline().startswith(b"a OK")
    tls = _context(tls_server).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(b"c NOOP\r\n")
    line = tls.makefile("rb").readline()
    assert line.startswith(b"c OK"), line      # "b" was never executed or answered
    tls.close()
