"""Bad input and limits over the real server: long lines, error count, failed logins, idle timeout."""

from __future__ import annotations

import poplib
import socket

import pytest

from mailpipe.access.pop3 import replies as R
from mailpipe.access.pop3 import wire
from tests.pop3.conftest import PASSWORD, USER, start_service


def _read_until_closed(client: poplib.POP3, limit: int = 50) -> list[bytes]:
    lines = []
    for _ in range(limit):
        line = client.file.readline()
        if not line:
            return lines
        lines.append(line)
    raise AssertionError("server did not close the connection")


def test_overlong_line_is_refused_and_session_continues(server):
    client = server.connect()
    client.sock.sendall(b"USER " + b"a" * 5000 + b"\r\n")
    assert client.file.readline() == R.LINE_TOO_LONG.line()
    client.sock.sendall(b"A" * 3000)                    # no LF yet: refused at once
    assert client.file.readline() == R.LINE_TOO_LONG.line()
    client.sock.sendall(b"B" * 100 + b"\r\nNOOP\r\n")    # tail of that line is discarded
    assert client.file.readline() == R.BAD_STATE.line()
    assert "USER" in client.capa()
    client.quit()


def test_too_many_errors_closes_the_connection(tmp_path):
    running = start_service(tmp_path, pop3={"max_errors": 3})
    try:
        client = running.connect()
        client.sock.sendall(b"XYZ\r\nXYZ\r\nXYZ\r\nCAPA\r\n")
        assert _read_until_closed(client) == [R.BAD_COMMAND.line()] * 3 + [R.TOO_MANY_ERRORS.line()]
    finally:
        running.stop()


def test_failed_logins_are_delayed_then_locked_out_per_ip(tmp_path):
    running = start_service(tmp_path, auth={"max_failures": 3, "lockout_seconds": 60})
    try:
        for _ in range(3):
            client = running.connect()
            client.user(USER)
            with pytest.raises(poplib.error_proto) as exc:
                client.pass_("wrong")
            assert exc.value.args[0] == R.AUTH_FAILED.line().rstrip(b"\r\n")
            client.quit()
        assert running.delays == [0.5, 1.0, 2.0]
        client = running.connect()
        client.user(USER)
        with pytest.raises(poplib.error_proto) as exc:
            client.pass_(PASSWORD)                  # even the right password
        assert exc.value.args[0] == R.LOCKED_OUT.line().rstrip(b"\r\n")
        running.clock.advance(61)
        client.user(USER)
        assert client.pass_(PASSWORD).startswith(b"+OK")
        client.quit()
    finally:
        running.stop()


def test_idle_timeout_closes_and_deletes_nothing(tmp_path):
    running = start_service(tmp_path, pop3={"idle_timeout": 0.3})
    try:
        running.deliver(b"Subject: x\r\n\r\nx\r\n", "idle")
        client = running.login()
        client.dele(1)
        assert _read_until_closed(client) == [R.IDLE_TIMEOUT.line()]
        client = running.login()
        assert client.stat()[0] == 1
        client.quit()
    finally:
        running.stop()


def test_connection_limit(tmp_path):
    running = start_service(tmp_path, pop3={"max_connections": 1})
    try:
        first = running.connect()
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            assert sock.makefile("rb").readline() == R.TOO_MANY_CONNECTIONS.line()
        first.quit()
    finally:
        running.stop()


def test_unavailable_maildrop_is_a_temporary_error(server):
    root = server.maildir()
    root.mkdir(parents=True)
    for sub in ("new", "tmp"):
        (root / sub).mkdir()
    (root / "cur").write_bytes(b"not a directory")
    client = server.connect()
    client.user(USER)
    with pytest.raises(poplib.error_proto) as exc:
        client.pass_(PASSWORD)
    assert exc.value.args[0] == R.MAILDROP_UNAVAILABLE.line().rstrip(b"\r\n")
    client.quit()


def test_internal_error_never_reaches_the_client_and_deletes_nothing(server, monkeypatch):
    server.deliver(b"Subject: x\r\n\r\nx\r\n", "boom")
    server.deliver(b"Subject: y\r\n\r\ny\r\n", "other")

    def explode(data: bytes, size: int) -> bytes:
        raise RuntimeError("secret /internal/path")

    client = server.login()
    client.dele(2)
    monkeypatch.setattr(wire, "encode_sized", explode)
    client.sock.sendall(b"RETR 1\r\n")
    lines = _read_until_closed(client)
    assert lines == [R.INTERNAL.line()]
    monkeypatch.undo()
    client = server.login()
    assert client.stat()[0] == 2
    client.quit()
