"""Issue 17.7: a large APPEND literal streams to the user's Maildir tmp/ and is renamed into place;
the server's memory does not grow with the literal. Real server in its own process (its VmHWM is
read from /proc), real imaplib client."""

from __future__ import annotations

import hashlib
import imaplib
import json
import subprocess
import sys
from pathlib import Path

from tests.imap.conftest import PASSWORD, USER

ROOT = Path(__file__).resolve().parents[2]
SIZE = 60 * 1024 * 1024
MAX_GROWTH = 16 * 1024 * 1024       # far below the 60 MB literal


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _message() -> bytes:
    head = b"From: bob@example.org\r\nTo: alice@example.test\r\nSubject: big\r\n\r\n"
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab\r\n"
    return head + line * ((SIZE - len(head)) // len(line))


def test_a_60_mb_append_keeps_server_memory_flat_and_arrives_intact(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tests.imap.imapproc", str(tmp_path)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        client = imaplib.IMAP4("127.0.0.1", info["port"], timeout=60)
        client.login(USER, PASSWORD)
        assert client.append("INBOX", None, None, b"Subject: warm-up\r\n\r\nx\r\n")[0] == "OK"
        before = _hwm(info["pid"])
        message = _message()
        typ, data = client.append("Sent", "(\\Seen)", None, message)
        grown = _hwm(info["pid"]) - before
        assert typ == "OK", data
        print(f"server VmHWM grew by {grown / 2**20:.1f} MiB")
        assert grown < MAX_GROWTH, f"server grew by {grown / 2**20:.1f} MiB"
        client.select("Sent", readonly=True)
        typ, data = client.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
        assert typ == "OK"
        assert hashlib.sha256(data[0][1]).digest() == hashlib.sha256(message).digest()
        client.logout()
        maildir = tmp_path / "mail" / "example.test" / "alice" / "Maildir"
        assert list((maildir / "tmp").iterdir()) == []        # renamed into place, nothing left behind
    finally:
        proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_a_large_append_to_a_missing_mailbox_leaves_nothing_in_tmp(server):
    client = server.login()
    typ, data = client.append("Nowhere", None, None, b"Subject: x\r\n\r\n" + b"y" * (3 << 20))
    assert typ == "NO" and b"TRYCREATE" in data[0]
    assert client.noop()[0] == "OK"
    client.logout()
    assert list((server.root / "tmp").iterdir()) == []


def test_a_large_append_that_cannot_be_stored_is_refused_and_the_session_goes_on(server, caplog):
    client = server.login()
    tmp = server.root / "tmp"
    tmp.rmdir()
    tmp.write_bytes(b"")                 # a broken Maildir: tmp/ is a file, nothing can be created in it
    try:
        typ, data = client.append("INBOX", None, None, b"Subject: x\r\n\r\n" + b"y" * (3 << 20))
        assert typ == "NO" and b"[UNAVAILABLE]" in data[0]
        assert client.noop()[0] == "OK"
        client.logout()
    finally:
        tmp.unlink()
        tmp.mkdir()
    assert any("cannot store an APPEND" in r.getMessage() and not r.exc_info for r in caplog.records)
