"""Issue 6 "How it will be checked", with imaplib and IMAPClient against the real server."""

from __future__ import annotations

import time

from imapclient import IMAPClient

from tests.imap.conftest import PASSWORD, USER, make_message


def test_login_and_list_shows_inbox_and_special_use(server):
    client = server.login()
    typ, lines = client.list()
    assert typ == "OK"
    text = b"\n".join(lines)
    assert b'"INBOX"' in text
    for name, use in (("Sent", b"\\Sent"), ("Drafts", b"\\Drafts"), ("Trash", b"\\Trash"), ("Junk", b"\\Junk")):
        line = next(x for x in lines if x.endswith(f'"{name}"'.encode()))
        assert use in line
    client.logout()


def test_select_inbox_reports_exists(server):
    server.deliver(make_message())
    client = server.login()
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    client.logout()


def test_fetch_body_peek_is_byte_exact(server):
    raw = make_message("bytes", body="Caf\u00e9 \u1ea1 tab\there\r\n\r\n.\r\nend\r\n").replace(b"Subject", b"X-Odd: \xff\r\nSubject")
    base = server.deliver(raw)
    stored = (server.root / "new" / f"{base},S={len(raw)}").read_bytes()
    client = server.login()
    client.select("INBOX")
    typ, data = client.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][1] == stored == raw
    typ, flags = client.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in flags[0]
    client.logout()


def test_store_seen_sticks_across_sessions(server):
    server.deliver(make_message())
    first = server.login()
    first.select("INBOX")
    typ, data = first.store("1", "+FLAGS", "(\\Seen)")
    assert typ == "OK" and b"\\Seen" in data[0]
    first.logout()
    second = server.login()
    second.select("INBOX")
    typ, data = second.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    assert list((server.root / "cur").iterdir())[0].name.endswith(":2,S")
    second.logout()


def test_idle_sees_second_delivery_within_two_seconds(server):
    server.deliver(make_message("first"))
    with IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10) as client:
        client.login(USER, PASSWORD)
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
        client.idle()
        started = time.monotonic()
        server.deliver(make_message("second"))
        responses = client.idle_check(timeout=2.0)
        elapsed = time.monotonic() - started
        client.idle_done()
    assert (2, b"EXISTS") in responses
    assert elapsed < 2.0


def test_new_mail_shows_at_next_command(server):
    client = server.login()
    client.select("INBOX")
    server.deliver(make_message("late"))
    typ, data = client.noop()
    assert typ == "OK"
    assert client.untagged_responses.get("EXISTS")[-1] == b"1"
    client.logout()
