"""STLS (RFC 2595) and implicit TLS (RFC 8314) with trustme certificates, and the plaintext policy."""

from __future__ import annotations

import poplib

import pytest

from mailpipe.access.pop3 import replies as R
from tests.pop3.conftest import PASSWORD, USER, start_service

MESSAGE = b"Subject: tls\r\n\r\nsecret body\r\n"


def test_stls_then_login_and_retr(tls_server):
    tls_server.deliver(MESSAGE, "t")
    client = tls_server.connect()
    assert "STLS" in client.capa()
    assert client.stls(context=tls_server.client_context) == R.STLS_BEGIN.line().rstrip(b"\r\n")
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert "STLS" not in client.capa()
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("STLS")
    assert exc.value.args[0] == R.STLS_ACTIVE.line().rstrip(b"\r\n")
    client.user(USER)
    client.pass_(PASSWORD)
    assert client.retr(1)[1] == [b"Subject: tls", b"", b"secret body"]
    client.quit()


def test_implicit_tls_listener(tls_server):
    tls_server.deliver(MESSAGE, "t")
    assert len(tls_server.service.addresses) == 2
    client = tls_server.connect_tls()
    assert client.getwelcome() == R.GREETING.line().rstrip(b"\r\n")
    assert "STLS" not in client.capa()
    client.user(USER)
    client.pass_(PASSWORD)
    assert client.stat() == (1, len(MESSAGE))
    client.quit()


def test_no_tls_configured_means_one_listener_and_no_stls(server):
    assert len(server.service.addresses) == 1
    client = server.connect()
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("STLS")
    assert exc.value.args[0] == R.STLS_UNAVAILABLE.line().rstrip(b"\r\n")
    client.quit()


def test_plaintext_refused_without_tls_when_loopback_exception_is_off(tmp_path):
    running = start_service(tmp_path, tls=True, auth={"plaintext_on_loopback": False})
    try:
        client = running.connect()
        capa = client.capa()
        assert "USER" not in capa and "SASL" not in capa and "STLS" in capa
        for command in (f"USER {USER}", "AUTH PLAIN AGFAYg=="):
            with pytest.raises(poplib.error_proto) as exc:
                client._shortcmd(command)
            assert exc.value.args[0] == R.NEED_TLS.line().rstrip(b"\r\n")
        client.stls(context=running.client_context)
        assert "USER" in client.capa()
        client.user(USER)
        assert client.pass_(PASSWORD).startswith(b"+OK")
        client.quit()
    finally:
        running.stop()


def test_plaintext_sent_before_stls_is_discarded(tls_server):
    """Command injection across STLS (like CVE-2011-0411) must not work."""
    client = tls_server.connect()
    client.sock.sendall(b"STLS\r\nUSER injected@example.test\r\n")
    assert client.file.readline() == R.STLS_BEGIN.line()
    client.sock = tls_server.client_context.wrap_socket(client.sock, server_hostname="localhost")
    client.file = client.sock.makefile("rb")
    with pytest.raises(poplib.error_proto) as exc:
        client.pass_(PASSWORD)                # the injected USER was dropped
    assert exc.value.args[0] == R.NEED_USER.line().rstrip(b"\r\n")
    client.quit()
