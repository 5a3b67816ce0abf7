"""Multi-session behaviour, \\Recent, IDLE and autologout, names in modified UTF-7, SPECIAL-USE selection."""

from __future__ import annotations

import socket

from imapclient import IMAPClient

from mailpipe.access.imap import replies
from tests.imap.conftest import PASSWORD, USER, Server, make_message


def test_recent_goes_to_exactly_one_session(server):
    server.deliver(make_message())
    first = server.login()
    first.select("INBOX")
    assert first.untagged_responses["RECENT"] == [b"1"]
    second = server.login()
    second.select("INBOX")
    assert second.untagged_responses["RECENT"] == [b"0"]
    assert b"\\Recent" in first.fetch("1", "(FLAGS)")[1][0]
    assert b"\\Recent" not in second.fetch("1", "(FLAGS)")[1][0]
    first.logout()
    second.logout()


def test_append_in_other_session_shows_exists(server):
    first, second = server.login(), server.login()
    first.select("INBOX")
    second.append("INBOX", None, None, make_message("appended"))
    first.noop()
    assert first.untagged_responses["EXISTS"][-1] == b"1"
    first.logout()
    second.logout()


def test_idle_reports_expunge_from_other_session(server):
    server.deliver(make_message("a"))
    server.deliver(make_message("b"))
    other = server.login()
    other.select("INBOX")
    with IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10) as client:
        client.login(USER, PASSWORD)
        client.select_folder("INBOX")
        client.idle()
        other.store("1", "+FLAGS", "(\\Deleted)")
        other.expunge()
        seen = []
        for _ in range(5):
            seen += client.idle_check(timeout=2.0)
            if (1, b"EXPUNGE") in seen:
                break
        client.idle_done()
    assert (1, b"EXPUNGE") in seen
    other.logout()


def test_autologout_after_idle_timeout(tmp_path):
    srv = Server(tmp_path, idle_timeout=0.3)
    try:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        assert reader.readline() == f"* BYE {replies.BYE_TIMEOUT}\r\n".encode()
        assert reader.readline() == b""
        sock.close()
    finally:
        srv.stop()


def test_modified_utf7_names_round_trip(server):
    client = server.login()
    name = "H&ARk-p th&AbA-"      # "Hộp thư" in modified UTF-7
    assert client.create(f'"{name}"')[0] == "OK"
    lines = client.list('""', "*")[1]
    assert any(line.endswith(f'"{name}"'.encode()) for line in lines)
    assert (server.root / f".{name}" / "cur").is_dir()
    assert client.select(f'"{name}"')[0] == "OK"
    client.logout()


def test_list_special_use_selection(server):
    client = server.login()
    client.create("Other")
    typ, lines = client._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
    data = client._untagged_response(typ, lines, "LIST")[1]
    names = sorted(line.rsplit(b" ", 1)[1] for line in data)
    assert names == [b'"Drafts"', b'"Junk"', b'"Sent"', b'"Trash"']
    client.logout()


def test_copy_to_missing_mailbox_says_trycreate(server):
    server.deliver(make_message())
    client = server.login()
    client.select("INBOX")
    typ, data = client.copy("1", "Missing")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    client.logout()


def test_pipelined_commands_are_answered_in_order(server):
    server.deliver(make_message())
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(f"a LOGIN {USER} {PASSWORD}\r\nb SELECT INBOX\r\nc FETCH 1 (UID)\r\nd LOGOUT\r\n".encode())
    tags = []
    for _ in range(40):
        line = reader.readline()
        if not line:
            break
        if not line.startswith(b"*"):
            tags.append(line.split(b" ", 2)[:2])
    assert tags == [[b"a", b"OK"], [b"b", b"OK"], [b"c", b"OK"], [b"d", b"OK"]]
    sock.close()


def test_fetch_of_message_expunged_elsewhere_says_expungeissued(server):
    server.deliver(make_message("a"))
    first, second = server.login(), server.login()
    first.select("INBOX")
    second.select("INBOX")
    first.store("1", "+FLAGS", "(\\Deleted)")
    first.expunge()
    typ, data = second.fetch("1", "(BODY.PEEK[])")     # EXPUNGE may not be sent during FETCH
    assert typ == "NO" and b"EXPUNGEISSUED" in data[0]
    second.noop()
    assert second.untagged_responses.get("EXPUNGE") == [b"1"]
    first.logout()
    second.logout()
