"""Pure tests of the POP3 grammar and line framing, with hypothesis fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.access.pop3.parser import (
    Command, LineBuffer, LineTooLong, Pop3SyntaxError, UnknownCommand, Verb, parse_command,
)


@pytest.mark.parametrize("line, command", [
    (b"STAT", Command(Verb.STAT)),
    (b"list", Command(Verb.LIST)),
    (b"LIST 3", Command(Verb.LIST, number=3)),
    (b"TOP 2 0", Command(Verb.TOP, number=2, count=0)),
    (b"UIDL 12", Command(Verb.UIDL, number=12)),
    (b"USER alice@example.test", Command(Verb.USER, text="alice@example.test")),
    (b"PASS two  spaces ", Command(Verb.PASS, text="two  spaces ")),
    (b"auth plain AGEAYg==", Command(Verb.AUTH, text="PLAIN", initial="AGEAYg==")),
    (b"AUTH", Command(Verb.AUTH)),
    (b"PASS p\xc3\xa4ss", Command(Verb.PASS, text="p\u00e4ss")),
])
def test_parses(line, command):
    assert parse_command(line) == command


@pytest.mark.parametrize("line", [
    b"", b"ST", b"STATS", b"STAT extra", b"LIST -1", b"LIST +1", b"LIST 1 2", b"RETR", b"TOP 1",
    b"RETR 12345678901", b"USER", b"PASS", b"USER a  b", b"LIST  1", b"STAT\x00", b"USER \xff",
    b" STAT",
])
def test_rejects(line):
    with pytest.raises(Pop3SyntaxError):
        parse_command(line)


@pytest.mark.parametrize("line", [b"APOP user digest", b"XTND", b"RPOP x", b"UTF8"])
def test_unknown_commands(line):
    with pytest.raises(UnknownCommand):
        parse_command(line)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_parse_either_parses_or_raises_syntax_error(line):
    try:
        command = parse_command(line)
    except Pop3SyntaxError:
        return
    assert isinstance(command.verb, Verb)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([v.value for v in Verb]), st.lists(
    st.one_of(st.integers(0, 10**12).map(str), st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1)),
    max_size=3))
def test_fuzz_structured_commands(keyword, params):
    line = " ".join([keyword, *params]).encode()
    try:
        command = parse_command(line)
    except Pop3SyntaxError:
        return
    assert command.verb.value == keyword
    if command.number is not None:
        assert 0 <= command.number < 10**10


def test_line_buffer_splits_crlf_and_lf_and_waits_for_more():
    buf = LineBuffer(limit=20)
    buf.feed(b"NOOP\r\nSTAT\nLI")
    assert buf.next_line() == b"NOOP"
    assert buf.next_line() == b"STAT"
    assert buf.next_line() is None
    buf.feed(b"ST\r\n")
    assert buf.next_line() == b"LIST"
    assert not buf.pending


def test_line_buffer_limits_and_discards_rest_of_long_line():
    buf = LineBuffer(limit=10)
    buf.feed(b"x" * 11)
    with pytest.raises(LineTooLong):
        buf.next_line()
    buf.feed(b"yyyy\r\nNOOP\r\n")
    assert buf.next_line() == b"NOOP"
    buf.feed(b"z" * 11 + b"\r\n")
    with pytest.raises(LineTooLong):
        buf.next_line()
    assert buf.next_line() is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=20))
def test_fuzz_line_buffer_memory_is_bounded(chunks):
    buf = LineBuffer(limit=16)
    for chunk in chunks:
        buf.feed(chunk)
        for _ in range(100):
            try:
                line = buf.next_line()
            except LineTooLong:
                continue
            if line is None:
                break
            assert len(line) <= 16 and b"\n" not in line
        assert len(buf._data) <= 16 + 40
