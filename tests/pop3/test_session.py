"""Pure tests of the sans-I/O session: states, transitions, effects; fuzzed with hypothesis."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.access.pop3 import replies as R
from mailpipe.access.pop3.effects import (
    CheckLogin, Close, Commit, Listing, LoginOutcome, Send, SendMessage, StartTls,
)
from mailpipe.access.pop3.session import Pop3Session, SessionPolicy
from mailpipe.access.pop3.states import ALLOWED, TRANSITIONS, State, Trigger

LISTING = Listing((10, 20, 30), ("u1", "u2", "u3"))


def _session(**policy) -> Pop3Session:
    return Pop3Session(SessionPolicy(**{"plaintext_allowed": True, "tls_available": True, **policy}))


def _logged_in() -> Pop3Session:
    session = _session()
    session.handle_line(b"USER a@example.test")
    assert session.handle_line(b"PASS pw") == [CheckLogin("a@example.test", "pw")]
    assert session.state is State.CHECKING
    assert session.login_result(LoginOutcome.OK, LISTING) == [Send(R.logged_in(3, 60).line())]
    return session


def test_transition_table_covers_every_state_with_drop():
    for state in State:
        assert TRANSITIONS[(state, Trigger.DROP)] is State.CLOSED
    assert set(ALLOWED) == {State.AUTHORIZATION, State.TRANSACTION}


def test_login_and_transaction_flow():
    session = _logged_in()
    assert session.state is State.TRANSACTION
    assert session.handle_line(b"STAT") == [Send(R.stat(3, 60).line())]
    assert session.handle_line(b"DELE 2") == [Send(R.DELETED.line())]
    assert session.handle_line(b"RETR 2") == [Send(R.ALREADY_DELETED.line())]
    assert session.handle_line(b"RETR 3") == [SendMessage(3)]
    assert session.handle_line(b"TOP 1 5") == [SendMessage(1, 5)]
    assert session.handle_line(b"LIST") == [Send(R.scan_listing(2, 40).line() + b"1 10\r\n3 30\r\n.\r\n")]
    assert session.handle_line(b"QUIT") == [Commit((2,))]
    assert session.state is State.UPDATE
    assert session.commit_result(True) == [Send(R.signing_off(2).line()), Close()]
    assert session.state is State.CLOSED
    assert session.handle_line(b"NOOP") == []


def test_failed_login_outcomes_return_to_authorization():
    for outcome, reply in [(LoginOutcome.BAD_CREDENTIALS, R.AUTH_FAILED), (LoginOutcome.IN_USE, R.IN_USE),
                           (LoginOutcome.LOCKED_OUT, R.LOCKED_OUT),
                           (LoginOutcome.UNAVAILABLE, R.MAILDROP_UNAVAILABLE)]:
        session = _session()
        session.handle_line(b"USER a")
        session.handle_line(b"PASS b")
        assert session.login_result(outcome) == [Send(reply.line())]
        assert session.state is State.AUTHORIZATION


def test_dropped_session_never_commits():
    session = _logged_in()
    session.handle_line(b"DELE 1")
    session.dropped()
    assert session.state is State.CLOSED
    assert session.handle_line(b"QUIT") == []


def test_stls_flow_forgets_user():
    session = _session()
    session.handle_line(b"USER a")
    assert session.handle_line(b"STLS") == [Send(R.STLS_BEGIN.line()), StartTls()]
    assert session.state is State.TLS_HANDSHAKE
    session.tls_started(plaintext_allowed=True)
    assert session.state is State.AUTHORIZATION
    assert session.handle_line(b"PASS b") == [Send(R.NEED_USER.line())]
    assert session.handle_line(b"STLS") == [Send(R.STLS_ACTIVE.line())]


def test_plaintext_not_allowed():
    session = _session(plaintext_allowed=False)
    assert session.handle_line(b"USER a") == [Send(R.NEED_TLS.line())]
    assert session.handle_line(b"AUTH PLAIN") == [Send(R.NEED_TLS.line())]
    capa = session.handle_line(b"CAPA")[0].data
    assert b"USER" not in capa and b"SASL" not in capa and b"STLS\r\n" in capa


def test_sasl_login_and_plain_exchanges():
    session = _session()
    assert session.handle_line(b"AUTH LOGIN") == [Send(R.SASL_USERNAME)]
    assert session.handle_line(base64.b64encode(b"a@x")) == [Send(R.SASL_PASSWORD)]
    assert session.handle_line(base64.b64encode(b"pw")) == [CheckLogin("a@x", "pw")]
    session = _session()
    session.handle_line(b"AUTH PLAIN")
    assert session.state is State.SASL
    assert session.handle_line(b"not base64!") == [Send(R.SASL_MALFORMED.line())]
    assert session.state is State.AUTHORIZATION
    assert session.handle_line(b"AUTH PLAIN " + base64.b64encode(b"other\0a\0pw")) == [
        Send(R.SASL_MALFORMED.line())]


def test_overlong_sasl_response_aborts_the_exchange():
    session = _session()
    session.handle_line(b"AUTH PLAIN")
    assert session.line_too_long() == [Send(R.LINE_TOO_LONG.line())]
    assert session.state is State.AUTHORIZATION


def test_check_login_repr_hides_password():
    assert "hunter2" not in repr(CheckLogin("a", "hunter2"))


def test_error_limit_closes():
    session = _session()
    session.policy = SessionPolicy(True, False, max_errors=2)
    assert session.handle_line(b"FOO") == [Send(R.BAD_COMMAND.line())]
    assert session.handle_line(b"FOO") == [Send(R.BAD_COMMAND.line() + R.TOO_MANY_ERRORS.line()), Close()]
    assert session.state is State.CLOSED


def _drive(session: Pop3Session, effects: list, depth: int = 0) -> None:
    """Play the shell: answer every effect the way a real shell could."""
    for effect in effects:
        assert isinstance(effect, (Send, CheckLogin, SendMessage, StartTls, Commit, Close))
        if isinstance(effect, CheckLogin):
            outcome = LoginOutcome.OK if effect.password == "pw" else LoginOutcome.BAD_CREDENTIALS
            _drive(session, session.login_result(outcome, LISTING), depth + 1)
        elif isinstance(effect, SendMessage):
            assert 1 <= effect.number <= 3 and effect.number not in session.deleted
        elif isinstance(effect, StartTls):
            session.tls_started(True)
        elif isinstance(effect, Commit):
            assert session.state is State.UPDATE
            _drive(session, session.commit_result(True), depth + 1)


COMMANDS = st.sampled_from([
    b"USER a", b"PASS pw", b"PASS no", b"AUTH PLAIN", b"AUTH LOGIN", b"AGEAcHc=", b"*", b"STAT", b"LIST",
    b"LIST 2", b"RETR 1", b"RETR 9", b"DELE 1", b"DELE 3", b"RSET", b"TOP 2 1", b"UIDL", b"UIDL 3",
    b"NOOP", b"CAPA", b"STLS", b"QUIT", b"", b"\xff\xfe", b"LIST 0",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(COMMANDS, st.binary(max_size=30)), max_size=40))
def test_fuzz_session_never_raises_and_deletes_only_via_quit(lines):
    session = _session()
    _drive(session, session.greeting())
    for line in lines:
        effects = session.handle_line(line)
        if any(isinstance(e, Commit) for e in effects):
            assert line.upper().startswith(b"QUIT")
        _drive(session, effects)
        assert session.state in (State.AUTHORIZATION, State.SASL, State.TRANSACTION, State.CLOSED)
