"""Hostile bytes over a real socket: every reply is a well-formed SMTP reply, the listener survives."""

from __future__ import annotations

import re
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingress.conftest import HOST

REPLY_LINE = re.compile(rb"^[2-5][0-9]{2}[ -]")
TOKENS = [b"EHLO c\r\n", b"MAIL FROM:<a@sender.test>\r\n", b"RCPT TO:<alice@example.test>\r\n",
          b"RCPT TO:<x@foreign.test>\r\n", b"DATA\r\n", b"\r\n.\r\n", b"\n.\n", b"BDAT 3\r\n", b"BDAT 2 LAST\r\n",
          b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"*\r\n", b"RSET\r\n", b"\x00", b"\xff\xfe", b"\r", b"\n",
          "RCPT TO:<ü@example.test>\r\n".encode(), b"MAIL FROM:<a@b> SMTPUTF8 SIZE=99999999999\r\n"]


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection((HOST, port), 10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        for _ in range(10_000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=30)), max_size=25))
def test_hostile_sessions(server, parts):
    received = exchange(server.port("smtp"), b"".join(parts))
    lines = received.split(b"\r\n")
    assert lines[-1] == b""                                   # every reply ends with CRLF
    for line in lines[:-1]:
        assert REPLY_LINE.match(line), line
        assert b"Traceback" not in line and b"Exception" not in line
    assert exchange(server.port("smtp"), b"NOOP\r\n").startswith(b"220 ")      # still serving
