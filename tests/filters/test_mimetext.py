"""The one MIME text-decoding helper (issue 16.5): IMAP SEARCH and the rules read a part alike."""

from __future__ import annotations

import base64
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.access.imap import mime as imap_mime
from mailpipe.core.mimetext import decode_text, part_text, undo_transfer_encoding
from mailpipe.filters.rules.mime import extract, normalise, parse


def test_transfer_encodings():
    assert undo_transfer_encoding(b"caf=C3=A9", "Quoted-Printable") == "café".encode()
    assert undo_transfer_encoding(b"Y2Fm\r\nw6k=\r\n", b"base64") == "café".encode()
    assert undo_transfer_encoding(b"Y2Fmw6k", b"base64") == "café".encode()                   # padding supplied
    assert undo_transfer_encoding(b"Y2Fmw6k", b"base64", strict=True) is None
    assert undo_transfer_encoding(b"x", b"x-uuencode") == b"x"
    assert undo_transfer_encoding(b"x", b"x-uuencode", strict=True) is None
    assert undo_transfer_encoding(b"as is", None) == b"as is"


def test_charsets():
    assert decode_text("Khuyến".encode(), None) == "Khuyến"                                 # 8-bit unlabelled: UTF-8
    assert decode_text("Khuyến".encode(), "us-ascii") == "Khuyến"
    assert decode_text("café".encode("latin-1"), "utf-8") == "café"                          # invalid UTF-8: Latin-1
    assert decode_text("Nguyên".encode("windows-1258"), "windows-1258") == "Nguyên"
    assert decode_text(b"plain", "no-such-charset") == "plain"
    assert decode_text(b"plain", "hex") == "plain"                                          # not a text codec


PARTS = st.tuples(st.sampled_from(["café <b>x</b>", "Khuyến mãi", "plain\r\ntext", ""]),
                  st.sampled_from(["utf-8", "iso-8859-1", "windows-1258"]),
                  st.sampled_from(["7bit", "base64", "quoted-printable"]))


@settings(max_examples=60, deadline=None)
@given(PARTS)
def test_imap_and_rules_read_a_text_part_alike(case):
    text, charset, cte = case
    data = text.encode(charset, errors="replace")
    body = {"7bit": data, "base64": base64.encodebytes(data).replace(b"\n", b"\r\n"),
            "quoted-printable": quopri.encodestring(data).replace(b"\n", b"\r\n")}[cte]
    raw = (f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
           .encode() + body)
    imap_text = imap_mime.decoded_body(imap_mime.parse(raw))
    assert imap_text == part_text(body, cte, charset)
    assert normalise(imap_text) == extract(raw).text == parse(raw).text
