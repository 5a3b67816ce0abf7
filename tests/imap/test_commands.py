"""Every RFC 3501 command and the extensions, with imaplib against the real server."""

from __future__ import annotations

import imaplib
import re
import socket

import pytest

from mailpipe.access.imap import replies
from tests.imap.conftest import PASSWORD, USER, make_message


def _ok(result):
    typ, data = result
    assert typ == "OK", data
    return data


def test_capability_before_and_after_login(server):
    client = server.client()
    caps = client.capabilities
    assert "AUTH=PLAIN" in caps and "IMAP4REV1" in caps and "LOGINDISABLED" not in caps
    assert "STARTTLS" not in caps   # no certificate configured
    client.login(USER, PASSWORD)
    data = _ok(client.capability())[0]
    for cap in (b"UIDPLUS", b"MOVE", b"SPECIAL-USE", b"IDLE", b"NAMESPACE", b"LITERAL+", b"UNSELECT"):
        assert cap in data
    assert b"AUTH=" not in data
    client.logout()


def test_wrong_password_is_refused(server):
    client = server.client()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(USER, "wrong")
    client.login(USER, PASSWORD)
    client.logout()


def test_authenticate_plain_and_login(server):
    client = server.client()
    client.authenticate("PLAIN", lambda _c: f"\0{USER}\0{PASSWORD}".encode())
    assert client.state == "AUTH"
    client.logout()
    client = server.client()
    answers = iter([USER.encode(), PASSWORD.encode()])
    client.authenticate("LOGIN", lambda _c: next(answers))
    assert client.state == "AUTH"
    client.logout()


def test_unknown_command_and_wrong_state_are_bad(server):
    client = server.client()
    tag = client._new_tag().decode()
    client.send(f"{tag} FROB\r\n".encode())
    assert client.readline().decode().startswith(f"{tag} BAD {replies.BAD_UNKNOWN}")
    tag = client._new_tag().decode()
    client.send(f"{tag} SELECT INBOX\r\n".encode())
    assert client.readline().decode().startswith(f"{tag} BAD {replies.BAD_STATE}")
    client.logout()


def test_create_rename_delete_and_list_wildcards(server):
    client = server.login()
    _ok(client.create("Work"))
    _ok(client.create("Work.2024"))
    _ok(client.create("Caf&AOk-"))
    typ, _ = client.create("Work")
    assert typ == "NO"
    top = _ok(client.list('""', "%"))
    assert any(x.endswith(b'"Work"') and b"\\HasChildren" in x for x in top)
    assert not any(x.endswith(b'"Work.2024"') for x in top)
    assert any(x.endswith(b'"Work.2024"') for x in _ok(client.list('""', "*")))
    assert [x for x in _ok(client.list("Work.", "%")) if x] and _ok(client.list('""', '""'))[0].startswith(b"(\\Noselect)")
    _ok(client.rename("Work", "Job"))
    names = b" ".join(_ok(client.list('""', "*")))
    assert b'"Job.2024"' in names and b'"Work' not in names
    _ok(client.delete("Job.2024"))
    assert client.delete("INBOX")[0] == "NO"
    assert client.delete("Nope")[0] == "NO"
    client.logout()


@pytest.mark.parametrize("name", ["../evil", "a/b", "a..b", ".hidden", "bad\\name", "&Jjo", "a*b", "50%", "/etc", "~root"])
def test_unsafe_or_invalid_names_are_refused(server, name):
    client = server.login()
    typ, data = client.create(f'"{name}"')
    assert typ in ("NO", "BAD")
    assert not (server.tmp / "evil").exists()
    client.logout()


def test_rename_inbox_moves_messages(server):
    server.deliver(make_message("one"))
    client = server.login()
    _ok(client.rename("INBOX", "Old"))
    assert _ok(client.select("INBOX")) == [b"0"]
    assert _ok(client.select("Old")) == [b"1"]
    client.logout()


def test_subscribe_lsub_status(server):
    server.deliver(make_message("one"))
    server.deliver(make_message("two"))
    client = server.login()
    _ok(client.create("Lists"))
    _ok(client.subscribe("Lists"))
    assert any(x.endswith(b'"Lists"') for x in _ok(client.lsub('""', "*")))
    _ok(client.unsubscribe("Lists"))
    assert not any(x.endswith(b'"Lists"') for x in _ok(client.lsub('""', "*")))
    status = _ok(client.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"))[0]
    assert b"MESSAGES 2" in status and b"UNSEEN 2" in status and b"UIDNEXT 3" in status
    client.logout()


def test_append_with_flags_date_and_appenduid(server):
    client = server.login()
    message = make_message("appended")
    typ, data = client.append("Drafts", "(\\Draft \\Seen $Label1)", '"02-Nov-2026 10:00:00 +0000"', message)
    assert typ == "OK"
    match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert match and match.group(2) == b"1"
    client.select("Drafts")
    data = _ok(client.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])"))
    assert b"\\Draft" in data[0][0] and b"$Label1" in data[0][0] and b"02-Nov-2026" in data[0][0]
    assert data[0][1] == message
    assert client.append("Nowhere", None, None, message)[0] == "NO"
    client.logout()


def test_literal_plus_append(server):
    client = server.login()
    message = make_message("nonsync")
    tag = client._new_tag().decode()
    client.send(f"{tag} APPEND INBOX {{{len(message)}+}}\r\n".encode() + message + b"\r\n")
    line = client.readline().decode()
    assert line.startswith(f"{tag} OK [APPENDUID"), line
    client.logout()


def test_too_large_literal_is_refused(tmp_path):
    from tests.imap.conftest import Server
    srv = Server(tmp_path, max_literal=100)
    try:
        client = srv.login()
        with pytest.raises(imaplib.IMAP4.error, match="TOOBIG"):
            client.append("INBOX", None, None, b"x" * 200)
        assert _ok(client.noop()) is not None
        client.logout()
    finally:
        srv.stop()


def test_examine_is_read_only(server):
    server.deliver(make_message())
    client = server.login()
    _ok(client.select("INBOX", readonly=True))
    assert client.store("1", "+FLAGS", "(\\Seen)")[0] == "NO"
    _ok(client.fetch("1", "(BODY[])"))
    assert b"\\Seen" not in _ok(client.fetch("1", "(FLAGS)"))[0]
    client.logout()


def test_fetch_without_peek_sets_seen(server):
    server.deliver(make_message())
    client = server.login()
    client.select("INBOX")
    data = _ok(client.fetch("1", "(BODY[TEXT])"))
    assert data[0][1] == b"Hi Alice.\r\n"
    assert b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
    client.logout()


def test_store_variants_and_keywords(server):
    server.deliver(make_message())
    client = server.login()
    client.select("INBOX")
    assert b"\\Flagged" in _ok(client.store("1", "+FLAGS", "(\\Flagged $Work)"))[0]
    assert b"$Work" in _ok(client.fetch("1", "(FLAGS)"))[0]
    data = _ok(client.store("1", "-FLAGS", "(\\Flagged)"))[0]
    assert b"\\Flagged" not in data and b"$Work" in data
    assert _ok(client.store("1", "FLAGS.SILENT", "(\\Answered)")) == [None]
    assert b"(\\Answered \\Recent)" in _ok(client.fetch("1", "(FLAGS)"))[0]
    assert (server.root / "dovecot-keywords").read_text().strip() == "0 $Work"
    client.logout()


def test_expunge_close_and_other_session_is_told(server):
    for i in range(3):
        server.deliver(make_message(f"m{i}"))
    first, second = server.login(), server.login()
    first.select("INBOX")
    second.select("INBOX")
    first.store("2", "+FLAGS", "(\\Deleted)")
    assert _ok(first.expunge()) == [b"2"]
    _ok(second.noop())
    assert second.untagged_responses.get("EXPUNGE") == [b"2"]
    assert _ok(second.fetch("2", "(UID)"))[0] == b"2 (UID 3)"
    second.store("1", "+FLAGS", "(\\Deleted)")
    _ok(second.close())
    _ok(first.noop())
    assert first.untagged_responses.get("EXPUNGE") == [b"1"]
    assert _ok(first.select("INBOX")) == [b"1"]
    first.logout()
    second.logout()


def test_flag_change_in_other_session_is_reported(server):
    server.deliver(make_message())
    first, second = server.login(), server.login()
    first.select("INBOX")
    second.select("INBOX")
    first.store("1", "+FLAGS", "(\\Flagged)")
    _ok(second.noop())
    fetches = second.untagged_responses.get("FETCH") or []
    assert any(b"\\Flagged" in f for f in fetches)
    first.logout()
    second.logout()


def _uids(uid_set: bytes) -> list[int]:
    """Expand an IMAP uid-set ("1,3:4") into its UIDs."""
    out: list[int] = []
    for part in uid_set.split(b","):
        low, _, high = part.partition(b":")
        out += range(int(low), int(high or low) + 1)
    return out


def test_uid_commands_and_uidplus(server):
    for i in range(4):
        server.deliver(make_message(f"u{i}"))
    client = server.login()
    client.select("INBOX")
    data = _ok(client.uid("FETCH", "2:3", "(FLAGS)"))
    assert [re.search(rb"UID (\d+)", d).group(1) for d in data] == [b"2", b"3"]
    _ok(client.uid("STORE", "3", "+FLAGS", "(\\Deleted)"))
    _ok(client.uid("STORE", "4", "+FLAGS", "(\\Deleted)"))
    assert _ok(client.uid("SEARCH", "DELETED")) == [b"3 4"]
    typ, data = client._simple_command("UID", "COPY", "1:2", "Trash")   # the tagged reply (uid() drops it)
    assert typ == "OK"
    # UIDPLUS (RFC 4315 3): the tagged OK carries COPYUID with the source and destination UIDs
    found = re.match(rb"\[COPYUID \d+ (\S+) (\S+)\]", data[0])
    assert found, data
    assert _uids(found.group(1)) == [1, 2] and len(_uids(found.group(2))) == 2, data
    _ok(client.uid("EXPUNGE", "4"))
    assert _ok(client.uid("SEARCH", "ALL")) == [b"1 2 3"]
    client.logout()


def test_copyuid_and_move(server):
    server.deliver(make_message("a"))
    server.deliver(make_message("b"))
    client = server.login()
    client.select("INBOX")
    tag = client._new_tag().decode()
    client.send(f"{tag} UID COPY 1:2 Trash\r\n".encode())
    line = client.readline().decode()
    validity = _ok(client.status("Trash", "(UIDVALIDITY)"))[0].split()[-1].rstrip(b")").decode()
    assert line.startswith(f"{tag} OK [COPYUID {validity} 1,2 1,2]"), line
    tag = client._new_tag().decode()
    client.send(f"{tag} MOVE 1 Junk\r\n".encode())
    lines = [client.readline().decode() for _ in range(3)]
    assert lines[0].startswith("* OK [COPYUID") and lines[1] == "* 1 EXPUNGE\r\n" and lines[2].startswith(f"{tag} OK")
    assert _ok(client.select("Junk")) == [b"1"]
    assert _ok(client.select("INBOX")) == [b"1"]
    client.logout()


def test_uids_and_uidvalidity_persist(server):
    server.deliver(make_message("a"))
    client = server.login()
    client.select("INBOX")
    validity = client.untagged_responses["UIDVALIDITY"][0]
    client.logout()
    server.deliver(make_message("b"))
    client = server.login()
    client.select("INBOX")
    assert client.untagged_responses["UIDVALIDITY"][0] == validity
    assert _ok(client.fetch("1:*", "(UID)")) == [b"1 (UID 1)", b"2 (UID 2)"]
    assert client.untagged_responses["UIDNEXT"][0] == b"3"
    client.logout()


def test_namespace_enable_id_unselect_check(server):
    client = server.login()
    assert _ok(client.namespace()) == [b'(("" ".")) NIL NIL']
    _ok(client.xatom("ID", "NIL"))
    _ok(client.enable("UTF8=ACCEPT")) if hasattr(client, "enable") else None
    client.select("INBOX")
    _ok(client.check())
    _ok(client.unselect())
    assert client.state == "AUTH"
    client.logout()


def test_bad_sequence_number_is_bad(server):
    server.deliver(make_message())
    client = server.login()
    client.select("INBOX")
    tag = client._new_tag().decode()
    client.send(f"{tag} FETCH 5 FLAGS\r\n".encode())
    assert client.readline().decode().startswith(f"{tag} BAD")
    client.logout()


def test_plaintext_login_refused_when_loopback_exception_is_off(tmp_path):
    from tests.imap.conftest import Server
    srv = Server.__new__(Server)
    Server.__init__(srv, tmp_path)
    srv.config.auth.plaintext_on_loopback = False
    try:
        client = srv.client()
        assert "LOGINDISABLED" in client.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            client.login(USER, PASSWORD)
        client.logout()
    finally:
        srv.stop()


def test_server_stop_sends_bye(tmp_path):
    from tests.imap.conftest import Server
    srv = Server(tmp_path)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"* OK")
    srv.stop()
    assert reader.readline().startswith(b"* BYE")
    sock.close()


def test_deleting_the_selected_mailbox_unselects(server):
    client = server.login()
    _ok(client.create("Gone"))
    _ok(client.select("Gone"))
    _ok(client.delete("Gone"))
    tag = client._new_tag().decode()
    client.send(f"{tag} FETCH 1 FLAGS\r\n".encode())
    assert client.readline().decode().startswith(f"{tag} BAD {replies.BAD_STATE}")
    client.logout()


def test_large_literal_refused_before_login(server):
    client = server.client()
    tag = client._new_tag().decode()
    client.send(f"{tag} LOGIN {{100000}}\r\n".encode())
    assert client.readline().decode().startswith(f"{tag} BAD [TOOBIG]")
    client.login(USER, PASSWORD)
    client.logout()


def test_recreated_mailbox_gets_new_uidvalidity(server):
    client = server.login()
    _ok(client.create("Tmp"))
    first = _ok(client.status("Tmp", "(UIDVALIDITY)"))[0]
    _ok(client.delete("Tmp"))
    _ok(client.create("Tmp"))
    assert _ok(client.status("Tmp", "(UIDVALIDITY)"))[0] != first
    client.logout()
