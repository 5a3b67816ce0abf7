"""Issue 17.6: under a low descriptor limit, IMAP (or POP3) connections cannot take the descriptors
the SMTP ingress in the same process needs: IMAP refuses with ``* BYE [UNAVAILABLE]`` (POP3 with
``-ERR [SYS/TEMP]``) while a reserve is left, and SMTP still accepts a message. Real server process,
real sockets."""

from __future__ import annotations

import json
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailpipe.access.imap import replies
from mailpipe.access.pop3 import replies as pop3_replies

ROOT = Path(__file__).resolve().parents[2]
NOFILE = 256
MAX_TRIES = 400


def _greeting(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return sock, sock.makefile("rb").readline()
    except OSError:
        return sock, b""


GREETING = {"imap": b"* OK", "pop3": b"+OK"}
REFUSAL = {"imap": f"* BYE {replies.BYE_UNAVAILABLE}\r\n".encode(), "pop3": pop3_replies.TOO_MANY_CONNECTIONS.line()}


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_access_connections_cannot_starve_smtp(tmp_path, protocol):
    proc = subprocess.Popen([sys.executable, "-m", "tests.imap.fdserver", str(tmp_path), str(NOFILE), protocol],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    held: list[socket.socket] = []
    try:
        ports = json.loads(proc.stdout.readline())
        refused = b""
        for _ in range(MAX_TRIES):          # bounded: NOFILE descriptors cannot hold more
            sock, line = _greeting(ports["access"])
            held.append(sock)
            if not line.startswith(GREETING[protocol]):
                refused = line
                break
        assert refused == REFUSAL[protocol], (len(held), refused)
        assert len(held) > 50                # the reserve is a quarter of the limit, not all of it
        with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=10) as smtp:
            smtp.ehlo("client.example")
            refused_rcpts = smtp.sendmail("a@example.org", ["alice@example.test"],
                                          b"Subject: still here\r\n\r\nbody\r\n")
            assert refused_rcpts == {}
    finally:
        for sock in held:
            sock.close()
        proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
