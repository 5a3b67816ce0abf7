"""Issue 17.2: what else lies in a Maildir (symlinks, directories, FIFOs) is never served, never
breaks a session, and is named once in the log. Real imaplib sessions against a real server."""

from __future__ import annotations

import logging
import os

from tests.imap.conftest import make_message

SECRET = b"root:$6$secret-hash:19000:0:99999:7:::\n"


def _plant(server, tmp_path):
    """One real message, a symlink to a secret file in new/, a directory and a FIFO in cur/."""
    server.deliver(make_message("real"))
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    os.symlink(secret, server.root / "new" / "1700000000.evil.host,S=40")
    (server.root / "cur" / "1700000001.dir.host:2,S").mkdir()
    os.mkfifo(server.root / "cur" / "1700000002.fifo.host:2,")


def test_symlink_and_directory_are_skipped_and_the_mailbox_stays_readable(server, tmp_path, caplog):
    _plant(server, tmp_path)
    caplog.set_level(logging.WARNING, logger="mailpipe.mailstore")
    client = server.login()
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = client.fetch("1:*", "(BODYSTRUCTURE)")
    assert typ == "OK" and len([d for d in data if d]) == 1
    typ, data = client.fetch("1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    assert SECRET not in b"".join(part[1] if isinstance(part, tuple) else part for part in data)
    assert b"Subject: real" in data[0][1]
    assert client.noop()[0] == "OK"       # the connection survived
    client.logout()
    skipped = [r.getMessage() for r in caplog.records if "not a regular file" in r.getMessage()]
    for name in ("1700000000.evil.host,S=40", "1700000001.dir.host:2,S", "1700000002.fifo.host:2,"):
        assert sum(name in line for line in skipped) == 1, skipped


def test_a_message_replaced_by_a_symlink_after_the_scan_is_not_served(server, tmp_path):
    base = server.deliver(make_message("swapped"))
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    client = server.login()
    client.select("INBOX")
    path = next(p for sub in ("new", "cur") for p in (server.root / sub).iterdir() if p.name.startswith(base))
    os.unlink(path)
    os.symlink(secret, path)              # same name, now a symlink: O_NOFOLLOW refuses it
    typ, data = client.fetch("1", "(BODY.PEEK[])")
    flat = b"".join(part[1] if isinstance(part, tuple) else part for part in data if part)
    assert SECRET not in flat
    assert client.noop()[0] == "OK"
    client.logout()
