"""Issue 17.4: a client that connects and resets (or closes) at once is a normal event, not an
"Unhandled exception in client_connected_cb" (uvloop raises RuntimeError on writes to a closed
transport; the standard loop does not). Real sockets, the event loop `serve` runs (uvloop)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from tests.imap.conftest import PASSWORD, USER, Server, wait_for

uvloop = pytest.importorskip("uvloop")


def _reset(port: int, payload: bytes) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close = RST
    if payload:
        sock.sendall(payload)
    sock.close()


def test_connect_and_reset_is_handled(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(asyncio, "new_event_loop", uvloop.new_event_loop)
    srv = Server(tmp_path)
    caplog.set_level(logging.DEBUG)
    try:
        for i in range(40):
            _reset(srv.port, [b"", b"a CAPABILITY\r\n", f"a LOGIN {USER} {PASSWORD}\r\n".encode()][i % 3])
        assert wait_for(lambda: not srv.service._connections, timeout=10)
        client = srv.login()              # the server still serves
        assert client.noop()[0] == "OK"
        client.logout()
    finally:
        srv.stop()
    unhandled = [r for r in caplog.records if r.exc_info or "Unhandled exception" in r.getMessage()]
    assert not unhandled, [r.getMessage() for r in unhandled]
