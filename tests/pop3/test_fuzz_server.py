"""Random bytes at the real server: every reply is a POP3 reply, no traceback, the connection ends cleanly."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pop3.conftest import start_service

WORDS = [b"USER ", b"PASS ", b"AUTH PLAIN", b"AUTH LOGIN ", b"STAT", b"LIST ", b"RETR ", b"TOP 1 ",
         b"CAPA", b"STLS", b"NOOP", b"*", b"=", b"\r\n", b"\n", b"\r", b"\x00", b"\xff", b" ", b"1", b"."]


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    running = start_service(tmp_path_factory.mktemp("fuzz"), pop3={"max_errors": 1000})
    yield running
    running.stop()


def _exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload + b"\r\nQUIT\r\n")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    raise AssertionError("server kept talking")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(WORDS), st.binary(max_size=12)), max_size=30))
def test_fuzz_garbage_gets_only_pop3_replies(shared_server, parts):
    received = _exchange(shared_server.port, b"".join(parts))
    assert received.startswith(b"+OK ")
    assert b"Traceback" not in received and b"Error" not in received
    assert received.endswith(b"\r\n")
