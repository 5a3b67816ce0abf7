"""The sans-I/O parser and grammar, line by line, plus a hypothesis fuzz of parser and session."""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpipe.access.imap import grammar, replies
from mailpipe.access.imap.grammar import Atom, Syntax
from mailpipe.access.imap.limits import Registry
from mailpipe.access.imap.parser import CONTINUE, NEED_DATA, Command, CommandParser, Line, Malformed
from mailpipe.access.imap.session import Env, Session
from mailpipe.access.imap.states import State
from mailpipe.core.authlimit import FailureLimiter
from mailpipe.core.clock import FakeClock
from mailpipe.mailstore.maildir import deliver, ensure_maildir
from mailpipe.core.config import Config


def events(parser: CommandParser, data: bytes) -> list:
    parser.receive_data(data)
    out = []
    for _ in range(1000):
        event = parser.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
    raise AssertionError("parser did not settle")


def test_simple_command():
    assert events(CommandParser(), b"a1 NOOP\r\n") == [Command("a1", "NOOP", ())]


def test_partial_input_needs_data():
    parser = CommandParser()
    assert events(parser, b"a1 LOG") == []
    assert events(parser, b"IN u p\r\n") == [Command("a1", "LOGIN", (Atom("u"), Atom("p")))]


def test_quoted_strings_with_escapes():
    (cmd,) = events(CommandParser(), b'a LOGIN "al\\"ice" "p\\\\w d"\r\n')
    assert cmd.args == (b'al"ice', b"p\\w d")


def test_synchronising_literal_asks_for_continuation():
    parser = CommandParser()
    assert events(parser, b"a LOGIN {5}\r\n") == [CONTINUE]
    assert events(parser, b"al\r\nx pw\r\n") == [Command("a", "LOGIN", (b"al\r\nx", Atom("pw")))]


def test_non_synchronising_literal_needs_no_continuation():
    assert events(CommandParser(), b"a APPEND INBOX {3+}\r\nabc\r\n") == [
        Command("a", "APPEND", (Atom("INBOX"), b"abc"))]


def test_literal_too_large():
    parser = CommandParser(max_literal=10)
    (bad,) = events(parser, b"a APPEND INBOX {11}\r\n")
    assert bad == Malformed("a", "[TOOBIG] Literal too large", fatal=False)
    assert events(parser, b"b NOOP\r\n") == [Command("b", "NOOP", ())]
    (fatal,) = events(CommandParser(max_literal=10), b"a APPEND INBOX {11+}\r\n")
    assert fatal.fatal


def test_line_too_long_is_fatal():
    (bad,) = events(CommandParser(max_line=100), b"a " + b"x" * 200)
    assert bad.fatal


def test_sections_stay_one_atom():
    (cmd,) = events(CommandParser(), b"a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>)\r\n")
    assert cmd.args == (Atom("1:*"), [Atom("FLAGS"), Atom("BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>")])


@pytest.mark.parametrize("line,reason", [(b"\r\n", "Missing or invalid tag"), (b"a\r\n", "Missing command"),
                                          (b'a LOGIN "x\r\n', "unterminated quoted string"),
                                          (b"a X (a\r\n", "missing )"), (b"a X )\r\n", "unexpected )")])
def test_malformed_lines(line, reason):
    (bad,) = events(CommandParser(), line)
    assert isinstance(bad, Malformed) and bad.reason == reason and not bad.fatal


def test_line_mode():
    parser = CommandParser()
    parser.line_mode = True
    assert events(parser, b"DONE\r\n") == [Line(b"DONE")]


def test_sequence_sets():
    assert grammar.sequence_set(Atom("1,3:5,7:*")) == [(1, 1), (3, 5), (7, None)]
    for bad in ("0", "1:", "a", "1,,2"):
        with pytest.raises(Syntax):
            grammar.sequence_set(Atom(bad))


def test_modified_utf7():
    assert grammar.mutf7_decode("Caf&AOk-") == "Café"
    assert grammar.mutf7_encode("Café & Thư") == "Caf&AOk- &- Th&AbA-"
    assert grammar.mutf7_decode(grammar.mutf7_encode("Hộp thư đến")) == "Hộp thư đến"
    with pytest.raises(Syntax):
        grammar.mutf7_decode("&Jjo")


# -- fuzz ---------------------------------------------------------------------------------------

ATOMS = [b"a1", b"NOOP", b"LOGIN", b"SELECT", b"FETCH", b"UID", b"STORE", b"SEARCH", b"LIST", b"INBOX",
         b"1:*", b"(", b")", b"{3}", b"{2+}", b'"', b"\\Seen", b"BODY[", b"]", b"<0.5>", b"*", b"%",
         b"CHARSET", b"OR", b"NOT", b"+FLAGS", b"COPY", b"MOVE", b"APPEND", b"IDLE", b"DONE", b"\r\n", b" "]
fragments = st.lists(st.one_of(st.sampled_from(ATOMS), st.binary(max_size=8)), max_size=30).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=fragments, cut=st.integers(min_value=1, max_value=64))
def test_parser_never_raises(data, cut):
    parser = CommandParser(max_literal=1000, max_line=500)
    for i in range(0, len(data), cut):
        for event in events(parser, data[i:i + cut]):
            assert isinstance(event, (Command, Malformed, type(CONTINUE)))


@pytest.fixture(scope="module")
def session_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    config = Config(data_dir=tmp, imap={"port": 0, "tls_port": 0})
    root = tmp / "mail" / "example.test" / "alice" / "Maildir"
    ensure_maildir(root)
    deliver(root, [b"Subject: x\r\n\r\nbody\r\n"], base="1.fuzz")
    return config, root


class _NoDirectory:
    def authenticate(self, user, password):
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=fragments, selected=st.booleans())
def test_session_answers_every_line(session_env, data, selected):
    """Any input: a tagged reply (OK/NO/BAD), a continuation, or BYE; never an exception."""
    config, root = session_env
    env = Env(config, _NoDirectory(), FailureLimiter(clock=FakeClock()), Registry(10, 10), "127.0.0.1", False)
    session = Session(env)
    session.state, session.user, session.root = State.AUTHENTICATED, "alice@example.test", root
    if selected:
        session.handle(Command("s", "SELECT", (Atom("INBOX"),)))
        assert session.state is State.SELECTED
    parser = CommandParser(max_literal=1000, max_line=500)
    for event in events(parser, data + b"\r\n"):
        if event is CONTINUE:
            continue
        outcome = session.handle(event)
        parser.line_mode = session.wants_line
        assert outcome.data.endswith(b"\r\n") or outcome.data == b""
        last = outcome.data.rstrip(b"\r\n").split(b"\r\n")[-1]
        assert last.startswith((b"+", b"* BYE")) or last.split(b" ")[1:2] in ([b"OK"], [b"NO"], [b"BAD"]) \
            or b"EXPUNGE" in last or outcome.data == b"", last
        assert replies.NO_SERVER.encode() not in outcome.data
    session.close()
