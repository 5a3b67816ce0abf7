"""The issue's "How it will be checked" section, with poplib against the real server."""

from __future__ import annotations

import os
import poplib
import socket

from mailpipe.access.pop3 import replies as R
from tests.pop3.conftest import PASSWORD, USER

MESSAGES = [
    b"From: a@example.org\r\nSubject: one\r\n\r\nHello\r\n",
    b"From: a@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
    b"From: a@example.org\r\nSubject: bare lf\n\nline one\nline two",
]


def _deliver_all(server) -> None:
    for i, data in enumerate(MESSAGES):
        server.deliver(data, f"msg{i}")


def _retr_bytes(client: poplib.POP3, number: int) -> bytes:
    """What poplib returns joined back with CRLF (poplib already removed dot-stuffing)."""
    _, lines, _ = client.retr(number)
    return b"".join(line + b"\r\n" for line in lines)


def _expected(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def test_stat_counts_delivered_messages(server):
    _deliver_all(server)
    client = server.login()
    count, octets = client.stat()
    assert count == len(MESSAGES)
    sizes = [int(line.split()[1]) for line in client.list()[1]]
    assert octets == sum(sizes)
    client.quit()


def test_retr_is_byte_exact(server):
    _deliver_all(server)
    client = server.login()
    for number, data in enumerate(MESSAGES, start=1):
        assert _retr_bytes(client, number) == _expected(data)
    client.quit()


def test_list_size_is_octets_on_the_wire(server):
    _deliver_all(server)
    client = server.login()
    for number in range(1, len(MESSAGES) + 1):
        listed = int(client.list(number).split()[2])
        client.sock.sendall(f"RETR {number}\r\n".encode())
        first = client.file.readline()
        raw = b""
        for _ in range(1000):
            line = client.file.readline()
            if line in (b".\r\n", b""):
                break
            raw += line
        assert first == R.message_follows(listed).line()
        assert len(raw) == listed
        if number == 2:
            assert b"\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n" in raw
    client.quit()


def test_dele_then_quit_removes(server):
    _deliver_all(server)
    client = server.login()
    client.dele(2)
    client.quit()
    client = server.login()
    assert client.stat()[0] == len(MESSAGES) - 1
    remaining = [_retr_bytes(client, n) for n in (1, 2)]
    assert remaining == [_expected(MESSAGES[0]), _expected(MESSAGES[2])]
    client.quit()
    names = os.listdir(server.maildir() / "cur") + os.listdir(server.maildir() / "new")
    assert not any(name.startswith("msg1,") for name in names)


def test_dele_then_dropped_connection_removes_nothing(server):
    _deliver_all(server)
    client = server.login()
    client.dele(1)
    client.dele(3)
    client.sock.shutdown(socket.SHUT_RDWR)
    client.sock.close()
    client = _login_when_unlocked(server)
    assert client.stat()[0] == len(MESSAGES)
    client.quit()


def _login_when_unlocked(server, attempts: int = 200) -> poplib.POP3:
    """The old session's lock goes when the server notices the drop; wait for that, bounded."""
    for _ in range(attempts):
        client = server.connect()
        client.user(USER)
        try:
            client.pass_(PASSWORD)
            return client
        except poplib.error_proto as exc:
            assert b"[IN-USE]" in exc.args[0]
            client.close()
    raise AssertionError("maildrop stayed locked")
