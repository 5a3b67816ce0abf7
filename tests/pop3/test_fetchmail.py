"""Debian's fetchmail against the real server: retrieve over POP3 into an MDA, with and without keep."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.pop3.conftest import PASSWORD, USER

pytestmark = pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")

MDA = """#!/bin/sh
exec cat > "$1/$(date +%s%N).$$.eml"
"""


def _fetch(server, tmp: Path, *, keep: bool) -> tuple[int, list[Path]]:
    out = tmp / "delivered"
    out.mkdir(exist_ok=True)
    mda = tmp / "mda.sh"
    mda.write_text(MDA)
    mda.chmod(0o700)
    rc = tmp / "fetchmailrc"
    rc.write_text(
        "set no syslog\nset no bouncemail\n"
        f"poll 127.0.0.1 with proto POP3 port {server.port} uidl timeout 20\n"
        f'  user "{USER}" there with password "{PASSWORD}" is "nobody" here\n'
        f'  {"keep" if keep else "no keep"} sslproto "" mda "{mda} {out}"\n')
    rc.chmod(stat.S_IRUSR | stat.S_IWUSR)
    env = {**os.environ, "HOME": str(tmp), "FETCHMAILHOME": str(tmp)}
    proc = subprocess.run(
        ["fetchmail", "--nodetach", "--invisible", "-f", str(rc), "--idfile", str(tmp / "ids"),
         "--pidfile", str(tmp / "fetchmail.pid")],
        env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr     # 1 = no new mail
    return proc.returncode, sorted(out.iterdir())


def _count(server) -> int:
    return len(os.listdir(server.maildir() / "new")) + len(os.listdir(server.maildir() / "cur"))


def _messages(n: int, first: int = 0) -> list[bytes]:
    return [f"From: s@example.org\r\nSubject: fetch {i}\r\n\r\nbody {i}\r\n.dot {i}\r\n".encode()
            for i in range(first, first + n)]


def test_fetchmail_keep_uses_uidl_to_avoid_refetching(server, tmp_path):
    for i, data in enumerate(_messages(3)):
        server.deliver(data, f"keep{i}")
    code, files = _fetch(server, tmp_path, keep=True)
    assert code == 0 and len(files) == 3
    assert _count(server) == 3
    bodies = sorted(f.read_bytes().replace(b"\r\n", b"\n") for f in files)
    assert all(b"\n.dot " in body and b"Subject: fetch " in body for body in bodies)
    server.deliver(_messages(1, first=3)[0], "keep3")
    code, files = _fetch(server, tmp_path, keep=True)
    assert code == 0 and len(files) == 4
    assert b"Subject: fetch 3" in max(files, key=lambda f: f.stat().st_mtime_ns).read_bytes()
    code, files = _fetch(server, tmp_path, keep=True)
    assert code == 1 and len(files) == 4
    assert _count(server) == 4


def test_fetchmail_without_keep_removes_messages(server, tmp_path):
    for i, data in enumerate(_messages(3)):
        server.deliver(data, f"gone{i}")
    code, files = _fetch(server, tmp_path, keep=False)
    assert code == 0 and len(files) == 3
    assert _count(server) == 0
    subjects = sorted(line for f in files for line in f.read_bytes().splitlines() if line.startswith(b"Subject"))
    assert subjects == [b"Subject: fetch 0", b"Subject: fetch 1", b"Subject: fetch 2"]
