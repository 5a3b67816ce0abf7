"""Maildrop semantics over the real server: lock, Seen for IMAP, UIDL stability, TOP, other writers."""

from __future__ import annotations

import os
import poplib
from email import message_from_bytes

import pytest

from mailpipe.access.pop3 import replies as R
from mailpipe.access.pop3.maildrop import uidl_for
from tests.pop3.conftest import OTHER, PASSWORD, USER

SIMPLE = b"Subject: s\r\n\r\nbody\r\n"

MULTIPART = (
    b"From: a@example.org\r\n"
    b"Subject: multipart\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"preamble line\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"first part\r\n"
    b".dotted line\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQ=\r\n"
    b"--XX--\r\n"
)


def _names(server, sub: str, user: str = USER) -> list[str]:
    return sorted(os.listdir(server.maildir(user) / sub))


def test_second_session_gets_in_use_and_first_keeps_working(server):
    server.deliver(SIMPLE, "m")
    first = server.login()
    second = server.connect()
    second.user(USER)
    with pytest.raises(poplib.error_proto) as exc:
        second.pass_(PASSWORD)
    assert exc.value.args[0] == R.IN_USE.line().rstrip(b"\r\n")
    assert server.delays == []            # IN-USE is not a failed login
    other = server.login(OTHER, "bob password")   # a different maildrop is not locked
    other.quit()
    assert first.stat()[0] == 1
    first.quit()
    second.user(USER)
    assert second.pass_(PASSWORD).startswith(b"+OK")
    second.quit()


def test_retr_marks_seen_and_top_does_not(server):
    server.deliver(SIMPLE, "a")
    server.deliver(SIMPLE, "b")
    client = server.login()
    client.top(1, 0)
    assert _names(server, "cur") == []
    client.retr(2)
    assert _names(server, "new") == [f"a,S={len(SIMPLE)}"]
    assert _names(server, "cur") == [f"b,S={len(SIMPLE)}:2,S"]
    client.retr(2)                          # already seen: no change
    assert _names(server, "cur") == [f"b,S={len(SIMPLE)}:2,S"]
    client.quit()


def test_retr_adds_seen_to_existing_flags_sorted(server):
    server.deliver(SIMPLE, "f")
    root = server.maildir()
    os.rename(root / "new" / f"f,S={len(SIMPLE)}", root / "cur" / f"f,S={len(SIMPLE)}:2,RF")
    client = server.login()
    client.retr(1)
    client.quit()
    assert _names(server, "cur") == [f"f,S={len(SIMPLE)}:2,FRS"]


def test_other_writers_rename_and_unlink_during_session(server):
    for name in ("moved", "gone", "deleted-twice"):
        server.deliver(SIMPLE, name)
    client = server.login()
    root = server.maildir()
    size = len(SIMPLE)
    os.rename(root / "new" / f"moved,S={size}", root / "cur" / f"moved,S={size}:2,F")   # IMAP flags it
    os.unlink(root / "new" / f"gone,S={size}")                                          # IMAP expunges
    numbers = {line.split()[1]: int(line.split()[0]) for line in client.uidl()[1]}
    assert client.retr(numbers[f"moved,S={size}".encode()])[1] == [b"Subject: s", b"", b"body"]
    with pytest.raises(poplib.error_proto) as exc:
        client.retr(numbers[f"gone,S={size}".encode()])
    assert exc.value.args[0] == R.MESSAGE_GONE.line().rstrip(b"\r\n")
    client.dele(numbers[f"gone,S={size}".encode()])
    client.dele(numbers[f"deleted-twice,S={size}".encode()])
    os.unlink(root / "new" / f"deleted-twice,S={size}")
    assert client.quit().startswith(b"+OK")
    assert _names(server, "cur") == [f"moved,S={size}:2,FS"]
    assert _names(server, "new") == []


def test_uidl_stable_across_sessions_seen_marking_and_new_deliveries(server):
    server.deliver(SIMPLE, "one")
    server.deliver(SIMPLE, "two")
    client = server.login()
    before = dict(line.split()[::-1] for line in client.uidl()[1])
    client.retr(1)
    client.quit()
    server.deliver(SIMPLE, "three")
    client = server.login()
    after = dict(line.split()[::-1] for line in client.uidl()[1])
    client.quit()
    assert set(before) <= set(after) and len(after) == 3
    assert before[f"one,S={len(SIMPLE)}".encode()] == after[f"one,S={len(SIMPLE)}".encode()]


def test_uidl_of_long_or_odd_base_is_a_digest(server):
    long_base = "x" * 80
    server.deliver(SIMPLE, long_base)
    client = server.login()
    uidl = client.uidl(1).split()[2].decode()
    client.quit()
    assert uidl == uidl_for(f"{long_base},S={len(SIMPLE)}")
    assert len(uidl) == 64 and all(c in "0123456789abcdef" for c in uidl)


def test_top_on_multipart(server):
    server.deliver(MULTIPART, "mp")
    client = server.login()
    _, head_only, _ = client.top(1, 0)
    header_lines = MULTIPART.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head_only == header_lines + [b""]
    _, three, _ = client.top(1, 3)
    assert three[len(header_lines) + 1:] == [b"preamble line", b"--XX", b"Content-Type: text/plain"]
    _, everything, _ = client.top(1, 1000)
    _, whole, _ = client.retr(1)
    assert everything == whole
    assert b".dotted line" in whole
    parsed = message_from_bytes(b"\r\n".join(whole) + b"\r\n")
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed", "text/plain", "application/octet-stream"]
    assert parsed.get_payload()[1].get_payload(decode=True) == b"\x00\x01\x02\x03\x04"
    client.quit()
    assert _names(server, "cur") == [f"mp,S={len(MULTIPART)}:2,S"]     # by RETR, not TOP
