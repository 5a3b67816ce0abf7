"""Issue 17.2 for POP3: symlinks, directories and FIFOs in new/ or cur/ are skipped (named once in
the log), never served; the maildrop stays usable. Real poplib sessions against a real server."""

from __future__ import annotations

import logging
import os

from tests.pop3.conftest import USER

SECRET = b"root:$6$secret-hash:19000:0:99999:7:::\r\n"
MESSAGE = b"From: a@example.org\r\nSubject: real\r\n\r\nbody\r\n"


def test_non_regular_entries_are_skipped_and_logged(server, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mailpipe.mailstore")
    server.deliver(MESSAGE, "1700000000.real.host")
    root = server.maildir(USER)
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    os.symlink(secret, root / "new" / "1700000001.evil.host")
    (root / "cur" / "1700000002.dir.host:2,S").mkdir()
    os.mkfifo(root / "new" / "1700000003.fifo.host")
    client = server.login()
    count, _size = client.stat()
    assert count == 1
    _resp, lines, _octets = client.retr(1)
    assert b"Subject: real" in lines and SECRET.rstrip() not in lines
    client.quit()
    skipped = [r.getMessage() for r in caplog.records if "not a regular file" in r.getMessage()]
    for name in ("1700000001.evil.host", "1700000002.dir.host:2,S", "1700000003.fifo.host"):
        assert sum(name in line for line in skipped) == 1, skipped


def test_a_message_swapped_for_a_symlink_after_login_is_not_served(server, tmp_path):
    server.deliver(MESSAGE, "1700000010.swap.host")
    root = server.maildir(USER)
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET * 3)
    client = server.login()
    assert client.stat()[0] == 1
    path = next((root / "new").iterdir())
    os.unlink(path)
    os.symlink(secret, path)
    try:
        _resp, lines, _octets = client.retr(1)
    except Exception as exc:              # an -ERR reply is right; the secret never
        assert "ERR" in str(exc)
    else:
        assert SECRET.rstrip() not in lines
    client.quit()
