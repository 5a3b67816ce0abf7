"""The DATA reader: framing, dot-unstuffing, limits, the 2023 smuggling variants, fuzz (whole and byte by byte)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.ingress import replies
from mailpipe.ingress.data import DataReader

SMUGGLED = b"MAIL FROM:<evil@foreign.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: spoof\r\n\r\nx\r\n"


def feed_whole(data: bytes, **limits):
    return DataReader(limits.get("max_size", 10_000), limits.get("max_header_size", 1_000)).feed(data)


def feed_bytewise(data: bytes, **limits):
    reader = DataReader(limits.get("max_size", 10_000), limits.get("max_header_size", 1_000))
    for index in range(len(data)):
        result = reader.feed(data[index:index + 1])
        if result is not None:
            return result, data[index + 1:]
    return None


def both(data: bytes, **limits):
    whole = feed_whole(data, **limits)
    bytewise = feed_bytewise(data, **limits)
    if whole is None:
        assert bytewise is None
        return None
    result, rest = bytewise
    assert (result.content, result.reply) == (whole.content, whole.reply)
    assert result.leftover + rest == whole.leftover
    return whole


def test_plain_message_and_leftover():
    result = both(b"Subject: a\r\n\r\nline\r\n.\r\nQUIT\r\n")
    assert result.content == b"Subject: a\r\n\r\nline\r\n"
    assert result.reply is None and result.leftover == b"QUIT\r\n"


def test_dot_unstuffing():
    result = both(b"Subject: a\r\n\r\n..starts with dot\r\n...\r\n.\r\n")
    assert result.content == b"Subject: a\r\n\r\n.starts with dot\r\n..\r\n"


def test_empty_message():
    assert both(b".\r\n").content == b""


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r"])
def test_smuggling_never_ends_the_message_and_rejects_it(fake_end):
    data = b"Subject: a\r\n\r\nfirst" + fake_end + SMUGGLED + b".\r\n"
    result = both(data)
    assert result is not None
    assert result.reply == replies.BARE_NEWLINE and result.content is None
    assert result.leftover == b""                    # the "second message" was eaten, never parsed


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\n", b"\n.\r\n"])
def test_smuggling_without_a_real_end_keeps_waiting(fake_end):
    assert both(b"Subject: a\r\n\r\nfirst" + fake_end + SMUGGLED) is None


def test_bare_lf_in_body_rejected():
    assert both(b"Subject: a\r\n\r\nline\nother\r\n.\r\n").reply == replies.BARE_NEWLINE


def test_nul_rejected():
    assert both(b"Subject: a\r\n\r\nnul\x00here\r\n.\r\n").reply == replies.NUL_IN_DATA


def test_size_limit_reads_to_end_then_rejects():
    result = both(b"Subject: a\r\n\r\n" + b"x" * 200 + b"\r\n.\r\nNOOP\r\n", max_size=100)
    assert result.reply == replies.SIZE_EXCEEDED and result.leftover == b"NOOP\r\n"


def test_header_size_limit():
    result = both(b"X-Long: " + b"y" * 300 + b"\r\n\r\nbody\r\n.\r\n", max_header_size=100)
    assert result.reply == replies.HEADER_TOO_BIG


def test_utf8_headers_accepted_invalid_rejected():
    assert both("Subject: grüße\r\n\r\nbody\r\n.\r\n".encode()).reply is None
    assert both(b"Subject: \xff\xfe\r\n\r\nbody\r\n.\r\n").reply == replies.BAD_HEADER_BYTES
    assert both(b"Subject: a\r\n\r\n8bit body \xff\r\n.\r\n").reply is None     # body bytes are 8BITMIME


def test_long_line_without_crlf_is_not_held_in_the_buffer():
    reader = DataReader(10_000_000, 1_000)
    reader.feed(b"Subject: a\r\n\r\n")
    for _ in range(100):
        assert reader.feed(b"z" * 10_000) is None
    assert len(reader._buf) < 3
    assert reader.feed(b"\r\n.\r\n").content.endswith(b"z" * 10 + b"\r\n")


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_any_bytes(data):
    result = both(data + b"\r\n.\r\n", max_size=300, max_header_size=200)
    assert result is not None
    assert (result.content is None) != (result.reply is None)
    if result.reply is not None:
        assert result.reply[:1] in "45"
    else:
        content = result.content
        assert b"\x00" not in content
        assert content.count(b"\r") == content.count(b"\n") == content.count(b"\r\n")   # CRLF only


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b".", b"\r\n", b"a", b"\x00", b"\xff", b"\r\n.\r\n"]), max_size=40))
def test_fuzz_framing_tokens(parts):
    data = b"".join(parts)
    terminated = b"\r\n.\r\n" in b"\r\n" + data
    assert (both(data) is not None) == terminated
