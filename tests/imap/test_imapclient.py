"""IMAPClient (a second real client library, with its own response parser) against the server."""

from __future__ import annotations

import datetime

from imapclient import IMAPClient
from imapclient.imapclient import DRAFTS, JUNK, SENT, TRASH

from tests.imap.conftest import PASSWORD, USER, make_message
from tests.imap.test_fetch_search import NESTED


def _client(server) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=10)
    client.login(USER, PASSWORD)
    return client


def test_envelope_and_bodystructure_parse_in_imapclient(server):
    server.deliver(NESTED)
    with _client(server) as client:
        client.select_folder("INBOX")
        data = client.fetch([1], ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE", "FLAGS"])[1]
        env = data[b"ENVELOPE"]
        assert env.from_[0].mailbox == b"carol" and env.from_[0].host == b"example.org"
        assert env.subject == b"=?utf-8?b?SMOzYSDEkcahbg==?="
        body = data[b"BODYSTRUCTURE"]
        assert body.is_multipart
        parts, subtype = body[0], body[1]
        assert subtype == b"mixed" and len(parts) == 3
        assert parts[0][1] == b"alternative" and parts[0][0][0][:2] == (b"text", b"plain")
        assert parts[1][:2] == (b"message", b"rfc822")
        assert isinstance(data[b"INTERNALDATE"], datetime.datetime)
        assert data[b"RFC822.SIZE"] == len(NESTED)


def test_folders_special_use_and_status(server):
    with _client(server) as client:
        assert client.find_special_folder(SENT) == "Sent"
        assert client.find_special_folder(DRAFTS) == "Drafts"
        assert client.find_special_folder(TRASH) == "Trash"
        assert client.find_special_folder(JUNK) == "Junk"
        client.create_folder("Projects")
        client.create_folder("Projects.Q4")
        assert client.folder_exists("Projects.Q4")
        client.rename_folder("Projects.Q4", "Projects.Q1")
        assert client.list_sub_folders() and client.folder_exists("Projects.Q1")
        client.delete_folder("Projects.Q1")
        assert not client.folder_exists("Projects.Q1")
        ns = client.namespace()
        assert ns.personal == (("", "."),)
        assert client.folder_status("INBOX", ["MESSAGES", "UIDNEXT"]) == {b"MESSAGES": 0, b"UIDNEXT": 1}


def test_append_move_copy_search_flags(server):
    with _client(server) as client:
        result = client.append("INBOX", make_message("first"), flags=["\\Seen"])
        assert b"APPENDUID" in result
        client.append("INBOX", make_message("second"))
        client.select_folder("INBOX")
        assert client.search(["UNSEEN"]) == [2]
        assert client.search(["SUBJECT", "first"]) == [1]
        client.add_flags([2], ["\\Flagged", "Important"])
        assert set(client.get_flags([2])[2]) >= {b"\\Flagged", b"Important"}
        client.remove_flags([2], ["Important"])
        assert b"Important" not in client.get_flags([2])[2]
        client.copy([1], "Trash")
        client.move([2], "Junk")
        assert client.search() == [1]
        assert client.select_folder("Junk")[b"EXISTS"] == 1
        client.select_folder("Trash")
        client.delete_messages([1])
        client.uid_expunge([1])
        assert client.search() == []


def test_search_utf8_with_imapclient(server):
    server.deliver(NESTED)
    with _client(server) as client:
        client.select_folder("INBOX")
        assert client.search(["BODY", "chúng tôi"], charset="UTF-8") == [1]
        assert client.search(["BODY", "không có"], charset="UTF-8") == []


def test_id_enable_unselect(server):
    with _client(server) as client:
        (info,) = client.id_({"name": "test"})
        assert dict(zip(info[::2], info[1::2]))[b"name"] == b"mailpipe"
        client.select_folder("INBOX")
        client.unselect_folder()
        client.select_folder("INBOX", readonly=True)
        client.close_folder()
