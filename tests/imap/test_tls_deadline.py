"""Issue 17.5: a TLS handshake has an absolute deadline (IMAP STARTTLS and IMAPS, POP3 STLS):
a client trickling a ClientHello byte by byte is closed on time. Real servers, raw sockets."""

from __future__ import annotations

import socket

from mailpipe.access.imap import server as imap_server
from mailpipe.access.pop3 import connection as pop3_connection
from tests.imap.conftest import Server
from tests.pop3.conftest import start_service
from tests.trickle import closes_within

HANDSHAKE = 1.0
SLACK = 1.5
HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 2   # a ClientHello that never ends


def test_imap_starttls_handshake_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(imap_server, "TLS_HANDSHAKE_TIMEOUT", HANDSHAKE)
    srv = Server(tmp_path, tls=True)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            sock.sendall(b"a STARTTLS\r\n")
            assert reader.readline().startswith(b"a OK")
            took = closes_within(sock, HELLO, every=0.2, bound=10)
        assert took is not None and took < HANDSHAKE + SLACK, took
    finally:
        srv.stop()


def test_pop3_stls_handshake_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(pop3_connection, "TLS_HANDSHAKE_TIMEOUT", HANDSHAKE)
    running = start_service(tmp_path, tls=True)
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"+OK")
            sock.sendall(b"STLS\r\n")
            assert reader.readline().startswith(b"+OK")
            took = closes_within(sock, HELLO, every=0.2, bound=10)
        assert took is not None and took < HANDSHAKE + SLACK, took
    finally:
        running.stop()
