"""The single-part fast path of the rules' MIME extraction gives exactly the email package's facts."""

from __future__ import annotations

import base64
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.filters.rules.mime import _plain_body, extract, parse
from tests.filters import rulemsgs

FIELDS = st.sampled_from([
    b"From: a@example.net", b"To: b@example.com", b"Subject: =?utf-8?b?S2h1eeG6v24gbcOjaQ==?=",
    b"Subject: folded\r\n continued", b"Received: from x\r\n\tby y", b"X-Empty:", b"MIME-Version: 1.0",
    b"Content-Type: text/plain", b"Content-Type: text/plain; charset=utf-8", b"content-type: TEXT/PLAIN;charset=\"UTF-8\"",
    b"Content-Type: text/plain; charset=windows-1258; format=flowed", b"Content-Type: text/plain; charset=bogus",
    b"Content-Type: text/plain; charset=iso-8859-1 ;", b"Content-Type: text/plain; name=x.exe",
    b"Content-Type: text/plain; charset=\"a b\"", b"Content-Type: text/plain; charset*=utf-8''x",
    b"Content-Type: text/html; charset=utf-8", b"Content-Type: multipart/mixed; boundary=b",
    b"Content-Type: text/plain;\r\n charset=utf-8", b"Content-Type: text", b"Content-Type: ",
    b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: BASE64 ", b"Content-Transfer-Encoding: 8bit",
    b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: x-uuencode",
    b"Content-Transfer-Encoding:7bit", b"Content-Disposition: inline", b"Content-Language: vi",
    b"From nobody", b"not a header", b" leading continuation", b"Bad\xffName: x", b"Subject: caf\xc3\xa9",
    b": no name",
])
TEXTS = st.sampled_from(["", "plain ascii\r\nsecond line\r\n", rulemsgs.PROMO_VI, "café <b>bold</b>",
                         "Khuye\u0302\u0301n ma\u0303i", "x" * 300])
CHARSETS = st.sampled_from(["utf-8", "windows-1258", "iso-8859-1"])


@st.composite
def bodies(draw) -> bytes:
    text, charset = draw(TEXTS), draw(CHARSETS)
    data = text.encode(charset, errors="replace")
    kind = draw(st.sampled_from(["raw", "base64", "qp", "binary", "broken64"]))
    if kind == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if kind == "qp":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    if kind == "broken64":
        return base64.b64encode(data)[:-1] + b"!\r\n"
    if kind == "binary":
        return draw(st.binary(max_size=60))
    return data


PLAIN_FIELDS = st.sampled_from([b"From: a@example.net", b"Subject: =?utf-8?q?caf=C3=A9?=", b"Subject: folded\r\n x",
                                b"MIME-Version: 1.0", b"X-Spam: =?bogus?q?x?="])
PLAIN_TYPES = st.sampled_from([b"", b"Content-Type: text/plain; charset=utf-8", b"Content-Type: text/plain",
                               b"Content-type: text/plain; charset=\"windows-1258\"; format=flowed",
                               b"Content-Type: text/plain; charset=iso-8859-1", b"Content-Type: text/plain; charset=x"])
PLAIN_CTES = st.sampled_from([b"", b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: 8bit",
                              b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: 7bit"])


@st.composite
def messages(draw) -> bytes:
    """Half of them single-part messages the fast path reads, half anything."""
    if draw(st.booleans()):
        fields = draw(st.lists(PLAIN_FIELDS, min_size=1, max_size=4)) + [draw(PLAIN_TYPES), draw(PLAIN_CTES)]
        fields = [f for f in draw(st.permutations(fields)) if f]
        return b"\r\n".join(fields) + b"\r\n\r\n" + draw(bodies())
    fields = draw(st.lists(FIELDS, max_size=8))
    separator = draw(st.sampled_from([b"\r\n\r\n", b"\r\n\r\n", b"\n\n", b"\r\n"]))
    return b"\r\n".join(fields) + separator + draw(bodies())


def _facts(facts) -> tuple:
    return facts.text, facts.attachments, facts.headers


@settings(max_examples=1500, deadline=None)
@given(messages())
def test_fast_path_equals_the_email_package(raw):
    assert _facts(extract(raw)) == _facts(parse(raw))


def test_fast_path_is_taken_for_common_single_part_mail():
    plain = b"From: a@example.net\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello\r\n"
    assert _plain_body(plain) == (b"Hello\r\n", None)
    for raw in (rulemsgs.utf8_base64(), rulemsgs.utf8_nfd_qp(), rulemsgs.cp1258_qp()):
        assert _plain_body(raw) is not None
        facts = extract(raw)
        assert "khuyến mãi" in facts.folded
        assert facts.headers["subject"] == ["Tin tức"]


def test_fast_path_declines_what_it_cannot_read_exactly():
    declined = [
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
        b"Content-Type: text/html\r\n\r\n<b>x</b>",
        b"Content-Disposition: attachment; filename=a.exe\r\n\r\nx",
        b"Content-Type: text/plain;\r\n charset=utf-8\r\n\r\nx",           # folded
        b"From nobody\r\nTo: b\r\n\r\nx",                                    # mbox line
        b"To: b\nSubject: c\r\n\r\nx",                                       # bare LF in the header section
        b"To: b\r\n\r\n".replace(b"\r\n\r\n", b"\n\n") + b"x",               # LF-only message
    ]
    for raw in declined:
        assert _plain_body(raw) is None, raw
