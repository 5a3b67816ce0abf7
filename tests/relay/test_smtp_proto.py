"""The sans-I/O SMTP client core, line by line."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mailpipe.delivery.result import enhanced_status
from mailpipe.delivery.smtp_proto import (
    Capabilities, ReplyParser, SmtpProtocolError, classify, dot_stuff, mail_command, rcpt_command,
)


def replies(data: bytes):
    parser = ReplyParser()
    parser.feed(data)
    out = []
    while (reply := parser.next_reply()) is not None:
        out.append(reply)
    return out, parser


def test_multiline_reply_and_partial_data():
    out, parser = replies(b"250-mx.test hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n354 go")
    assert len(out) == 1 and out[0].code == 250
    caps = Capabilities.from_ehlo(out[0])
    assert caps.has("pipelining") and caps.has("STARTTLS") and caps.size == 1000
    assert parser.pending
    parser.feed(b" ahead\r\n")
    assert parser.next_reply().text == "354 go ahead"


def test_bad_replies_raise_protocol_error():
    for bad in (b"hello\r\n", b"250-a\r\n251 b\r\n", b"999 x\r\n"):
        with pytest.raises(SmtpProtocolError):
            replies(bad)


@given(st.binary(max_size=300))
def test_parser_never_raises_anything_else(data):
    try:
        replies(data)
    except SmtpProtocolError:
        pass


def test_dot_stuffing_and_line_endings():
    assert dot_stuff(b"a\n.b\r\n..c\rd") == b"a\r\n..b\r\n...c\r\nd\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"
    assert dot_stuff(b".") == b"..\r\n.\r\n"


def _dot_stuff_by_lines(message: bytes) -> bytes:
    """RFC 5321 4.5.2 spelled out line by line: the reference for the whole-buffer version."""
    lines = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


@given(st.binary(max_size=200).map(lambda b: bytes(b"a.\r\n"[x % 4] for x in b)))
def test_dot_stuffing_equals_the_line_by_line_rule(message):
    assert dot_stuff(message) == _dot_stuff_by_lines(message)


def test_commands():
    caps = Capabilities(frozenset({"SIZE", "8BITMIME"}), 0)
    assert mail_command("a@b.test", 42, caps, True, False) == b"MAIL FROM:<a@b.test> SIZE=42 BODY=8BITMIME\r\n"
    assert mail_command("", 1, Capabilities(frozenset()), False, False) == b"MAIL FROM:<>\r\n"
    assert rcpt_command("x@y.test") == b"RCPT TO:<x@y.test>\r\n"
    with pytest.raises(ValueError):
        rcpt_command("x@y.test>\r\nRCPT TO:<z@evil.test")


def test_classify_and_enhanced_status():
    assert [classify(c) for c in (250, 451, 550)] == ["sent", "deferred", "failed"]
    assert enhanced_status("550 5.1.1 no such user", "failed") == "5.1.1"
    assert enhanced_status("451 try later", "deferred") == "4.0.0"
    assert enhanced_status("5.1.10 null MX", "failed") == "5.1.10"
    assert enhanced_status("connect failed", "deferred") == "4.0.0"


def _received_by_lines(message: bytes) -> int:
    """The rule spelled out: header lines (up to the first empty one, LF or CRLF) named Received."""
    count = 0
    for line in message.split(b"\n"):
        line = line[:-1] if line.endswith(b"\r") else line
        if not line:
            break
        count += line[:9].lower() == b"received:"
    return count


@given(st.lists(st.sampled_from([b"Received: x", b"received:y", b"RECEIVED: z", b"X-Received: no",
                                 b" Received: folded", b"Subject: s", b"", b"\r", b"Received:"]),
                max_size=12),
       st.sampled_from([b"\r\n", b"\n"]))
def test_count_received_follows_the_line_rule(lines, eol):
    from mailpipe.delivery.relay import count_received
    message = eol.join(lines) + eol + eol + b"Received: in the body\r\n"
    assert count_received(message) == _received_by_lines(message)
