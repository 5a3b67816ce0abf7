"""The command-line grammar: examples from RFC 5321/6531, and a fuzz invariant."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.ingress import replies
from mailpipe.ingress.grammar import Command, Verb, parse_command


@pytest.mark.parametrize("line, address", [
    (b"MAIL FROM:<alice@example.test>", "alice@example.test"),
    (b"mail from:<alice@example.test>", "alice@example.test"),
    (b"MAIL FROM: <alice@example.test>", "alice@example.test"),
    (b"MAIL FROM:<>", ""),
    (b'MAIL FROM:<"odd local"@example.test>', '"odd local"@example.test'),
    (b"MAIL FROM:<@relay.test,@other.test:alice@example.test>", "alice@example.test"),
    (b"MAIL FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]"),
    (b"MAIL FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"),
    ("MAIL FROM:<jürgen@bücher.test>".encode(), "jürgen@bücher.test"),
])
def test_mail_paths(line, address):
    parsed = parse_command(line)
    assert isinstance(parsed, Command) and parsed.verb is Verb.MAIL
    assert parsed.address == address


@pytest.mark.parametrize("line, reply", [
    (b"MAIL FROM:alice@example.test", replies.BAD_SENDER_SYNTAX),
    (b"MAIL FROM:<alice@example.test.>", replies.BAD_SENDER_SYNTAX),       # trailing dot
    (b"MAIL FROM:<alice@@example.test>", replies.BAD_SENDER_SYNTAX),
    (b"MAIL FROM:<alice@-bad.test>", replies.BAD_SENDER_SYNTAX),
    (b"MAIL TO:<alice@example.test>", replies.SYNTAX_MAIL),
    (b"RCPT TO:<>", replies.BAD_ADDRESS),
    (b"RCPT TO:<x@foreign.test@example.test>", replies.BAD_ADDRESS),
    (b"RCPT TO:<x@example.test> =bad", replies.BAD_PARAM_VALUE),
    (b"FOO bar", replies.UNKNOWN_COMMAND),
    (b"", replies.UNKNOWN_COMMAND),
    (b"NOOP\x00", replies.BAD_BYTES),
    (b"MAIL FROM:<a\xff@example.test>", replies.BAD_BYTES),
    ("EHLO bücher.test".encode(), replies.BAD_BYTES),
    (b"EHLO", replies.SYNTAX_HELO),
    (b"DATA now", replies.SYNTAX_NO_ARGS),
])
def test_bad_lines_get_replies(line, reply):
    assert parse_command(line) == reply


def test_params_are_parsed_and_upper_cased():
    parsed = parse_command(b"MAIL FROM:<a@example.test> size=123 body=8BITMIME SMTPUTF8")
    assert parsed.params == (("SIZE", "123"), ("BODY", "8BITMIME"), ("SMTPUTF8", None))


def test_postmaster_without_domain():
    assert parse_command(b"RCPT TO:<Postmaster>").address == "postmaster"


def test_every_verb_is_recognised():
    for verb in Verb:
        parsed = parse_command(verb.value.encode() + (b" x" if verb is Verb.HELO else b""))
        assert isinstance(parsed, str) or parsed.verb is verb


def _valid_outcome(result) -> bool:
    return isinstance(result, Command) or (isinstance(result, str) and result[:1] in "45")


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_any_bytes_parse_or_reply(data):
    assert _valid_outcome(parse_command(data))


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["MAIL FROM:", "RCPT TO:", "EHLO ", "AUTH ", "VRFY "]),
       st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_fuzz_command_shaped_text(prefix, rest):
    assert _valid_outcome(parse_command((prefix + rest).encode("utf-8")))
