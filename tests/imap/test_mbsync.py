"""A real third-party sync client: mbsync (Debian package isync) both ways over implicit TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.imap.conftest import PASSWORD, USER, Server, make_message

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (isync) not installed")


@pytest.fixture
def tls_server(tmp_path):
    srv = Server(tmp_path, tls=True)
    yield srv
    srv.stop()


def _config(srv: Server, tmp: Path) -> Path:
    srv.ca.cert_pem.write_to_path(tmp / "ca.pem")
    (tmp / "local").mkdir(exist_ok=True)
    rc = tmp / "mbsyncrc"
    rc.write_text(f"""
IMAPAccount test
Host localhost
Port {srv.tls_port}
User {USER}
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {tmp}/ca.pem
AuthMechs LOGIN PLAIN

IMAPStore remote
Account test

MaildirStore local
Path {tmp}/local/
Inbox {tmp}/local/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    return rc


def _sync(rc: Path) -> None:
    proc = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _local(tmp: Path) -> dict[bytes, str]:
    """Subject line -> flag letters of every message in the local INBOX."""
    out = {}
    for sub in ("cur", "new"):
        for path in (tmp / "local" / "INBOX" / sub).iterdir():
            subject = next(line for line in path.read_bytes().splitlines() if line.startswith(b"Subject:"))
            out[subject[9:]] = path.name.partition(":2,")[2]
    return out


def _remote(srv: Server) -> dict[bytes, bytes]:
    client = srv.login()
    client.select("INBOX")
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    client.logout()
    if data == [None]:
        return {}
    return {d[1].strip()[9:]: d[0] for d in data if isinstance(d, tuple)}


def _local_file(tmp: Path, subject: bytes) -> Path:
    for sub in ("cur", "new"):
        for path in (tmp / "local" / "INBOX" / sub).iterdir():
            if b"Subject: " + subject in path.read_bytes().splitlines():
                return path
    raise AssertionError(subject)


def test_mbsync_round_trip(tls_server, tmp_path):
    srv = tls_server
    for subject in ("one", "two", "three"):
        srv.deliver(make_message(subject))
    rc = _config(srv, tmp_path)
    _sync(rc)
    assert set(_local(tmp_path)) == {b"one", b"two", b"three"}
    assert (tmp_path / "local" / "Sent").is_dir()

    client = srv.login()                       # flag on the server, flag locally
    client.select("INBOX")
    client.store("1", "+FLAGS", "(\\Flagged)")
    client.logout()
    path = _local_file(tmp_path, b"two")
    path.rename(path.parent.parent / "cur" / (path.name.partition(":2,")[0] + ":2,S"))
    new = tmp_path / "local" / "INBOX" / "new" / "1700000000.up.local"
    new.write_bytes(make_message("uploaded"))  # a message written locally
    _sync(rc)
    local, remote = _local(tmp_path), _remote(srv)
    assert "F" in local[b"one"]
    assert b"\\Seen" in remote[b"two"]
    assert b"uploaded" in remote

    client = srv.login()                       # delete on the server, delete locally
    client.select("INBOX")
    typ, data = client.search(None, "SUBJECT", "one")
    client.store(data[0].decode(), "+FLAGS", "(\\Deleted)")
    client.expunge()
    client.logout()
    os.unlink(_local_file(tmp_path, b"three"))
    _sync(rc)
    assert set(_local(tmp_path)) == {b"two", b"uploaded"}
    assert set(_remote(srv)) == {b"two", b"uploaded"}
