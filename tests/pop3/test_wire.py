"""Pure tests of the wire form: CRLF, dot-stuffing, sizes and TOP."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.access.pop3 import wire


def _unstuff(data: bytes) -> list[bytes]:
    """What a client reconstructs: lines without CRLF, one leading dot removed."""
    lines = data.split(b"\r\n")
    assert lines[-1] == b""
    return [line[1:] if line.startswith(b".") else line for line in lines[:-1]]


def test_clean_message_is_sent_unchanged():
    data = b"Subject: a\r\n\r\nbody\r\n"
    assert wire.encode(data) is data
    assert wire.wire_size(data) == len(data)


def test_dot_stuffing_and_line_ends():
    data = b".starts\r\nmid.dle\r\n.\r\n..two\nbare lf\n.last"
    assert wire.encode(data) == b"..starts\r\nmid.dle\r\n..\r\n...two\r\nbare lf\r\n..last\r\n"
    assert wire.wire_size(data) == len(wire.encode(data))


def test_empty_message():
    assert wire.encode(b"") == b""
    assert wire.top(b"", 3) == b""


def test_top():
    data = b"A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n"
    assert wire.top(data, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert wire.top(data, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n"
    assert wire.top(data, 10**9) == wire.encode(data)
    assert wire.top(b"A: 1\r\nB: 2\r\n", 5) == b"A: 1\r\nB: 2\r\n"
    assert wire.top(b"\r\nbody\r\nmore\r\n", 1) == b"\r\nbody\r\n"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_encode_is_reversible_and_sized(data):
    out = wire.encode(data)
    assert len(out) == wire.wire_size(data)
    if data:
        assert out.endswith(b"\r\n")
        assert b"\r\n.\r\n" not in b"\r\n" + out       # the terminator can never appear inside
        expected = data.replace(b"\r\n", b"\n").split(b"\n")
        if expected[-1] == b"":
            expected.pop()
        assert _unstuff(out) == expected or b"\r" in data.replace(b"\r\n", b"")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_encode_sized_equals_encode(data):
    assert wire.encode_sized(data, wire.wire_size(data)) == wire.encode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 20))
def test_fuzz_top_is_a_prefix_of_retr(data, lines):
    assert wire.encode(data).startswith(wire.top(data, lines))
