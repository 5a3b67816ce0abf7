"""Issue 17.5 (POP3): login within ``login_timeout`` of connecting however busy the client looks,
and a command trickled byte by byte after login closed at ``idle_timeout``. Real server, raw sockets."""

from __future__ import annotations

import socket

from tests.pop3.conftest import PASSWORD, USER, start_service
from tests.trickle import closes_within

SLACK = 1.5


def test_complete_commands_do_not_extend_the_login_deadline(tmp_path):
    running = start_service(tmp_path, pop3={"login_timeout": 1.5})
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            assert sock.makefile("rb").readline().startswith(b"+OK")
            took = closes_within(sock, b"NOOP\r\n" * 100, every=0.1, bound=10)
        assert took is not None and took < 1.5 + SLACK, took
    finally:
        running.stop()


def test_a_command_trickled_after_login_is_closed_at_its_deadline(tmp_path):
    running = start_service(tmp_path, pop3={"idle_timeout": 1.5})
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"+OK")
            sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
            assert reader.readline().startswith(b"+OK")
            assert reader.readline().startswith(b"+OK")
            took = closes_within(sock, b"NOOPNOOP" * 50, every=0.3, bound=10)
        assert took is not None and took < 1.5 + SLACK, took
    finally:
        running.stop()
