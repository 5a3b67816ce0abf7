"""Issue 17.5/17.6 (IMAP): absolute deadlines (login within ``login_timeout`` of connecting, each
command within ``idle_timeout``), and the server-wide connection cap answered at greeting time.
Real server, raw sockets and imaplib."""

from __future__ import annotations

import socket

from mailpipe.access.imap import replies
from tests.imap.conftest import PASSWORD, USER, Server
from tests.trickle import closes_within

SLACK = 1.5


def _greeted(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert sock.makefile("rb").readline().startswith(b"* OK")
    return sock


def test_complete_commands_do_not_extend_the_login_deadline(tmp_path):
    srv = Server(tmp_path, login_timeout=1.5)
    try:
        with _greeted(srv.port) as sock:
            took = closes_within(sock, b"a NOOP\r\n" * 100, every=0.1, bound=10)
        assert took is not None and took < 1.5 + SLACK, took
    finally:
        srv.stop()


def test_a_command_trickled_after_login_is_closed_at_its_deadline(tmp_path):
    srv = Server(tmp_path, idle_timeout=1.5)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            sock.sendall(f"a LOGIN {USER} {PASSWORD}\r\n".encode())
            assert reader.readline().startswith(b"a OK")
            took = closes_within(sock, b"b SELECT INBOX" * 50, every=0.3, bound=10)
        assert took is not None and took < 1.5 + SLACK, took
    finally:
        srv.stop()


def test_a_logged_in_client_is_not_cut_off_by_the_login_timeout(tmp_path):
    srv = Server(tmp_path, login_timeout=0.5)
    try:
        client = srv.login()
        assert client.select("INBOX")[0] == "OK"
        assert client.noop()[0] == "OK"
        client.logout()
    finally:
        srv.stop()


def test_over_the_cap_the_greeting_is_bye_unavailable(tmp_path):
    srv = Server(tmp_path, max_connections=2)
    try:
        first, second = _greeted(srv.port), _greeted(srv.port)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as extra:
            lines = extra.makefile("rb").readlines()
        assert lines == [f"* BYE {replies.BYE_UNAVAILABLE}\r\n".encode()]
        first.close()
        second.close()
    finally:
        srv.stop()
