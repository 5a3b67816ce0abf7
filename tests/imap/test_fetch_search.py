"""FETCH sections, partial fetch, BODYSTRUCTURE of nested multiparts and SEARCH over decoded MIME."""

from __future__ import annotations

import base64
import re

from tests.imap.conftest import make_message

VIET = "Xin chào, chúng tôi gửi hóa đơn tháng này."
NESTED = (
    "From: Carol <carol@example.org>\r\nTo: alice@example.test\r\nSubject: =?utf-8?b?SMOzYSDEkcahbg==?=\r\n"
    "Date: Tue, 03 Nov 2026 09:00:00 +0700\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    "preamble\r\n--outer\r\n"
    'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
    "--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(VIET.encode()).decode().replace("\n", "\r\n") +
    "--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello html</p>\r\n--inner--\r\n"
    "--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    "From: Dan <dan@example.org>\r\nSubject: inner message\r\n\r\nforwarded body\r\n"
    "--outer\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--outer--\r\nepilogue\r\n"
).encode()


def _select(server, *messages):
    for message in messages:
        server.deliver(message)
    client = server.login()
    client.select("INBOX")
    return client


def _fetch(client, seq, items):
    typ, data = client.fetch(seq, items)
    assert typ == "OK", data
    return data


def test_bodystructure_of_nested_multipart(server):
    client = _select(server, NESTED)
    meta = _fetch(client, "1", "(BODYSTRUCTURE)")[0]
    text = meta if isinstance(meta, bytes) else meta[0]
    assert b'BODYSTRUCTURE ((("text" "plain" ("charset" "utf-8") NIL NIL "BASE64"' in text
    assert b'("text" "html" ("charset" "utf-8") NIL NIL "7BIT" 17 0' in text
    assert b'"alternative"' in text and b'"mixed" ("boundary" "outer")' in text
    assert b'("message" "rfc822" NIL NIL NIL "7BIT"' in text and b'"inner message"' in text
    assert b'("attachment" ("filename" "a.pdf"))' in text
    body = _fetch(client, "1", "(BODY)")[0]
    assert b"BODY (((" in (body if isinstance(body, bytes) else body[0])


def test_sections_are_exact(server):
    client = _select(server, NESTED)
    data = _fetch(client, "1", "(BODY.PEEK[1.2] BODY.PEEK[1.2.MIME] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[3])")
    parts = {re.search(rb"(BODY\[[^\]]*\])", d[0]).group(1): d[1] for d in data if isinstance(d, tuple)}
    assert parts[b"BODY[1.2]"] == b"<p>hello html</p>"
    assert parts[b"BODY[1.2.MIME]"] == b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    assert parts[b"BODY[2.HEADER]"] == b"From: Dan <dan@example.org>\r\nSubject: inner message\r\n\r\n"
    assert parts[b"BODY[2.TEXT]"] == b"forwarded body"
    assert parts[b"BODY[3]"] == b"JVBERi0="


def test_header_fields_and_not(server):
    client = _select(server, make_message("fields"))
    data = _fetch(client, "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    assert data[0][1] == b"From: Bob <bob@example.org>\r\nSubject: fields\r\n\r\n"
    data = _fetch(client, "1", "(BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM DATE MESSAGE-ID)])")
    assert data[0][1] == b"To: Alice <alice@example.test>\r\n\r\n"


def test_partial_fetch(server):
    message = make_message("partial")
    client = _select(server, message)
    data = _fetch(client, "1", "(BODY.PEEK[]<5.10>)")
    assert data[0][0].endswith(b"BODY[]<5> {10}") and data[0][1] == message[5:15]
    data = _fetch(client, "1", "(BODY.PEEK[TEXT]<100.10>)")
    assert data[0][0].endswith(b"BODY[TEXT]<100> {0}") and data[0][1] == b""


def test_rfc822_items_and_envelope(server):
    message = make_message("envelope")
    client = _select(server, message)
    data = _fetch(client, "1", "(RFC822.HEADER RFC822.TEXT RFC822.SIZE ENVELOPE)")
    header, text = message.split(b"\r\n\r\n", 1)
    assert data[0][1] == header + b"\r\n\r\n"
    assert data[1][1] == text
    tail = data[2]
    assert f"RFC822.SIZE {len(message)}".encode() in tail
    assert b'"envelope" (("Bob" NIL "bob" "example.org"))' in tail
    assert b'"<envelope@example.org>"' in tail


def test_fetch_macros(server):
    client = _select(server, make_message())
    for macro, must in (("ALL", b"ENVELOPE"), ("FAST", b"RFC822.SIZE"), ("FULL", b"BODY (")):
        data = _fetch(client, "1", macro)
        assert must in data[0]


def test_search_vietnamese_word_in_base64_utf8_body(server):
    client = _select(server, make_message("plain"), NESTED)
    typ, data = client.search("UTF-8", "BODY", '"hóa đơn"'.encode())
    assert typ == "OK" and data == [b"2"]
    client.literal = "tháng".encode()
    typ, data = client.search("UTF-8", "TEXT")
    assert data == [b"2"]
    typ, data = client.search("UTF-8", "SUBJECT", '"Hóa"'.encode())
    assert data == [b"2"]


def test_search_keys(server):
    client = _select(server, make_message("alpha", extra="X-Tag: red\r\n"), make_message("beta"), NESTED)
    client.store("2", "+FLAGS", "(\\Flagged \\Seen)")
    cases = {
        "ALL": b"1 2 3", "FLAGGED": b"2", "UNFLAGGED": b"1 3", "SEEN": b"2", "UNSEEN": b"1 3",
        "NOT SEEN": b"1 3", "OR FLAGGED SUBJECT alpha": b"1 2", "FROM bob": b"1 2", "FROM carol": b"3",
        'HEADER X-Tag red': b"1", "LARGER 400": b"3", "SMALLER 400": b"1 2", "1:2": b"1 2",
        "UID 2:*": b"2 3", "(FROM bob SUBJECT beta)": b"2", "SENTON 3-Nov-2026": b"3",
        "SENTBEFORE 3-Nov-2026": b"1 2", "SINCE 1-Jan-2000": b"1 2 3", "BEFORE 1-Jan-2000": b"",
        "BODY forwarded": b"3", "TEXT html": b"3", "NEW": b"1 3", "RECENT": b"1 2 3",
        "KEYWORD $x": b"", "DELETED": b"", "UNDELETED": b"1 2 3", "ANSWERED": b"", "DRAFT": b"",
    }
    for key, expected in cases.items():
        typ, data = client.search(None, key)
        assert typ == "OK" and data == [expected], key


def test_search_bad_charset_and_syntax(server):
    client = _select(server, make_message())
    tag = client._new_tag().decode()
    client.send(f"{tag} SEARCH CHARSET KOI8-R ALL\r\n".encode())
    assert client.readline().decode().startswith(f"{tag} NO [BADCHARSET")
    tag = client._new_tag().decode()
    client.send(f"{tag} SEARCH FROBNICATE\r\n".encode())
    assert client.readline().decode().startswith(f"{tag} BAD")


def test_many_bodies_are_streamed_exactly(server):
    messages = [make_message(f"bulk {i}", body=f"body {i}\r\n" * (i + 1)) for i in range(30)]
    client = _select(server, *messages)
    data = _fetch(client, "1:*", "(UID BODY.PEEK[])")
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    assert bodies == messages
