"""The sans-I/O POP3 session: one connection's protocol state machine.

Owns: dispatching parsed commands by state (``states.ALLOWED`` and
``states.TRANSITIONS``), deletion marks, message numbering for the session,
SASL exchanges, error counting and the replies. Input is lines (without CRLF)
and results of the shell's work; output is a list of ``effects``.

Must not: touch sockets, files, the directory or the clock. It never raises
for client input: every line yields effects (the fuzz tests check this).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailpipe.access.pop3 import replies as R
from mailpipe.access.pop3.effects import (
    CheckLogin, Close, Commit, Effect, Listing, LoginOutcome, Send, SendMessage, StartTls,
)
from mailpipe.access.pop3.parser import (
    Command, Pop3SyntaxError, UnknownCommand, Verb, decode_line, parse_command,
)
from mailpipe.access.pop3.states import State, Trigger, allowed, next_state
from mailpipe.core import sasl
from mailpipe.core.sasl import MECHANISMS


@dataclass(frozen=True)
class SessionPolicy:
    """What the shell decided about this connection before the first line."""

    plaintext_allowed: bool      # password auth allowed on the connection as it is now
    tls_available: bool          # STLS can be offered
    tls_active: bool = False     # implicit TLS (or after STLS)
    max_errors: int = 10
    max_commands: int = 1_000_000


_LOGIN_FAILURES = {
    LoginOutcome.BAD_CREDENTIALS: R.AUTH_FAILED,
    LoginOutcome.LOCKED_OUT: R.LOCKED_OUT,
    LoginOutcome.IN_USE: R.IN_USE,
    LoginOutcome.UNAVAILABLE: R.MAILDROP_UNAVAILABLE,
}


_CHALLENGES = {"": R.SASL_EMPTY_CHALLENGE, sasl.LOGIN_USER_PROMPT: R.SASL_USERNAME,
               sasl.LOGIN_PASSWORD_PROMPT: R.SASL_PASSWORD}
_SASL_FAILURES = {
    sasl.Reason.CANCELLED: R.SASL_CANCELLED,
    sasl.Reason.BAD_BASE64: R.SASL_MALFORMED,
    sasl.Reason.BAD_UTF8: R.SASL_MALFORMED,
    sasl.Reason.MALFORMED: R.SASL_MALFORMED,
    sasl.Reason.AUTHZID: R.SASL_MALFORMED,   # refused before any password check, as SMTP and IMAP do
}


def _send(*replies: R.Reply) -> list[Effect]:
    return [Send(b"".join(r.line() for r in replies))]


class Pop3Session:
    def __init__(self, policy: SessionPolicy) -> None:
        self.policy = policy
        self.state = State.AUTHORIZATION
        self.tls_active = policy.tls_active
        self.plaintext_allowed = policy.plaintext_allowed
        self.errors = 0
        self.commands = 0
        self.listing = Listing((), ())
        self.deleted: set[int] = set()
        self._user: str | None = None          # after USER, before PASS
        self._sasl: sasl.SaslExchange | None = None

    # -- inputs from the shell ---------------------------------------------
    def greeting(self) -> list[Effect]:
        return _send(R.GREETING)

    def handle_line(self, line: bytes) -> list[Effect]:
        if self.state is State.CLOSED:
            return []
        self.commands += 1
        if self.commands > self.policy.max_commands:
            return self._fatal(R.TOO_MANY_COMMANDS)
        if self.state is State.SASL:
            return self._sasl_response(line)
        try:
            command = parse_command(line)
        except UnknownCommand:
            return self._error(R.BAD_COMMAND)
        except Pop3SyntaxError:
            return self._error(R.BAD_SYNTAX)
        if not allowed(self.state, command.verb):
            return self._error(R.BAD_STATE)
        return _HANDLERS[command.verb](self, command)

    def line_too_long(self) -> list[Effect]:
        if self.state is State.SASL:
            return self._sasl_fail(R.LINE_TOO_LONG)
        return self._error(R.LINE_TOO_LONG)

    def login_result(self, outcome: LoginOutcome, listing: Listing | None = None) -> list[Effect]:
        if outcome is LoginOutcome.OK and listing is not None:
            self._move(Trigger.LOGIN_OK)
            self.listing = listing
            return _send(R.logged_in(len(listing.sizes), sum(listing.sizes)))
        self._move(Trigger.LOGIN_FAILED)
        return self._error(_LOGIN_FAILURES.get(outcome, R.AUTH_FAILED))

    def tls_started(self, plaintext_allowed: bool) -> None:
        self._move(Trigger.TLS_READY)
        self.tls_active = True
        self.plaintext_allowed = plaintext_allowed
        self._user = None

    def commit_result(self, complete: bool) -> list[Effect]:
        self._move(Trigger.COMMITTED)
        remaining = len(self.listing.sizes) - len(self.deleted)
        reply = R.signing_off(remaining) if complete else R.UPDATE_PARTIAL
        return [*_send(reply), Close()]

    def message_gone(self) -> list[Effect]:
        """The shell found that another client removed the message RETR/TOP asked for."""
        return self._error(R.MESSAGE_GONE)

    def timeout(self) -> list[Effect]:
        return self._fatal(R.IDLE_TIMEOUT)

    def dropped(self) -> None:
        self.state = next_state(self.state, Trigger.DROP)

    # -- helpers -------------------------------------------------------------
    def _move(self, trigger: Trigger) -> None:
        self.state = next_state(self.state, trigger)

    def _error(self, reply: R.Reply) -> list[Effect]:
        self.errors += 1
        if self.errors >= self.policy.max_errors:
            return self._fatal(reply, R.TOO_MANY_ERRORS)
        return _send(reply)

    def _fatal(self, *replies: R.Reply) -> list[Effect]:
        self._move(Trigger.DROP)
        return [*_send(*replies), Close()]

    def _live(self) -> list[int]:
        return [n for n in range(1, len(self.listing.sizes) + 1) if n not in self.deleted]

    def _totals(self) -> tuple[int, int]:
        live = self._live()
        return len(live), sum(self.listing.sizes[n - 1] for n in live)

    def _target(self, number: int | None) -> R.Reply | None:
        """The error reply if `number` is not a live message, else None."""
        if number is None or not 1 <= number <= len(self.listing.sizes):
            return R.NO_SUCH_MESSAGE
        if number in self.deleted:
            return R.ALREADY_DELETED
        return None

    # -- AUTHORIZATION -------------------------------------------------------
    def _capa(self, _: Command) -> list[Effect]:
        lines = ["IMPLEMENTATION mailpipe", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE",
                 "TOP", "UIDL", "EXPIRE NEVER"]
        if self.state is State.AUTHORIZATION:
            if self.plaintext_allowed:
                lines += ["USER", "SASL " + " ".join(MECHANISMS)]
            if self.policy.tls_available and not self.tls_active:
                lines.append("STLS")
        body = "".join(f"{line}\r\n" for line in lines).encode("ascii")
        return [Send(R.CAPA.line() + body + R.MULTILINE_END)]

    def _user_cmd(self, command: Command) -> list[Effect]:
        if not self.plaintext_allowed:
            return self._error(R.NEED_TLS)
        self._user = command.text
        return _send(R.USER_ACCEPTED)

    def _pass(self, command: Command) -> list[Effect]:
        if not self.plaintext_allowed:
            return self._error(R.NEED_TLS)
        if self._user is None:
            return self._error(R.NEED_USER)
        user, self._user = self._user, None
        return self._credentials(user, command.text or "")

    def _credentials(self, user: str, password: str) -> list[Effect]:
        self._move(Trigger.CREDENTIALS)
        return [CheckLogin(user, password)]

    def _stls(self, _: Command) -> list[Effect]:
        if self.tls_active:
            return self._error(R.STLS_ACTIVE)
        if not self.policy.tls_available:
            return self._error(R.STLS_UNAVAILABLE)
        self._move(Trigger.STLS)
        return [*_send(R.STLS_BEGIN), StartTls()]

    def _quit(self, _: Command) -> list[Effect]:
        if self.state is State.TRANSACTION:
            self._move(Trigger.QUIT)
            return [Commit(tuple(sorted(self.deleted)))]
        self._move(Trigger.QUIT)
        return [*_send(R.BYE), Close()]

    # -- AUTH (RFC 5034) -------------------------------------------------------
    def _auth(self, command: Command) -> list[Effect]:
        if command.text is None:
            body = "".join(f"{m}\r\n" for m in MECHANISMS).encode("ascii")
            return [Send(R.AUTH_LIST.line() + body + R.MULTILINE_END)]
        if not self.plaintext_allowed:
            return self._error(R.NEED_TLS)
        if command.text not in MECHANISMS:
            return self._error(R.NO_MECHANISM)
        self._user = None
        self._sasl = sasl.SaslExchange.start(command.text)
        self._move(Trigger.SASL_CONTINUE)   # the initial response, if any, is the first SASL line
        return self._sasl_step(command.initial)

    def _sasl_response(self, line: bytes) -> list[Effect]:
        try:
            text = decode_line(line)
        except Pop3SyntaxError:
            return self._sasl_fail(R.SASL_MALFORMED)
        return self._sasl_step(text)

    def _sasl_step(self, text: str | None) -> list[Effect]:
        if self._sasl is None:
            return self._sasl_fail(R.SASL_MALFORMED)
        result = self._sasl.step(text)
        if isinstance(result, sasl.Challenge):
            self._move(Trigger.SASL_CONTINUE)
            return [Send(_CHALLENGES[result.text])]
        if isinstance(result, sasl.Failure):
            return self._sasl_fail(_SASL_FAILURES[result.reason])
        return self._sasl_done(result.user, result.password)

    def _sasl_done(self, user: str, password: str) -> list[Effect]:
        self._sasl = None
        return self._credentials(user, password)

    def _sasl_fail(self, reply: R.Reply) -> list[Effect]:
        self._sasl = None
        self._move(Trigger.SASL_ABORT)
        return self._error(reply)

    # -- TRANSACTION -----------------------------------------------------------
    def _stat(self, _: Command) -> list[Effect]:
        return _send(R.stat(*self._totals()))

    def _list(self, command: Command) -> list[Effect]:
        if command.number is not None:
            problem = self._target(command.number)
            if problem:
                return self._error(problem)
            return _send(R.list_one(command.number, self.listing.sizes[command.number - 1]))
        body = "".join(f"{n} {self.listing.sizes[n - 1]}\r\n" for n in self._live())
        return [Send(R.scan_listing(*self._totals()).line() + body.encode("ascii") + R.MULTILINE_END)]

    def _uidl(self, command: Command) -> list[Effect]:
        if command.number is not None:
            problem = self._target(command.number)
            if problem:
                return self._error(problem)
            return _send(R.uidl_one(command.number, self.listing.uidls[command.number - 1]))
        body = "".join(f"{n} {self.listing.uidls[n - 1]}\r\n" for n in self._live())
        return [Send(R.uidl_listing().line() + body.encode("ascii") + R.MULTILINE_END)]

    def _retr(self, command: Command) -> list[Effect]:
        problem = self._target(command.number)
        if problem or command.number is None:            # _target refuses None
            return self._error(problem or R.NO_SUCH_MESSAGE)
        return [SendMessage(command.number, command.count if command.verb is Verb.TOP else None)]

    def _dele(self, command: Command) -> list[Effect]:
        problem = self._target(command.number)
        if problem or command.number is None:            # _target refuses None
            return self._error(problem or R.NO_SUCH_MESSAGE)
        self.deleted.add(command.number)
        return _send(R.DELETED)

    def _noop(self, _: Command) -> list[Effect]:
        return _send(R.NOOP)

    def _rset(self, _: Command) -> list[Effect]:
        self.deleted.clear()
        return _send(R.reset(*self._totals()))


_HANDLERS = {
    Verb.CAPA: Pop3Session._capa, Verb.USER: Pop3Session._user_cmd, Verb.PASS: Pop3Session._pass,
    Verb.AUTH: Pop3Session._auth, Verb.STLS: Pop3Session._stls, Verb.QUIT: Pop3Session._quit,
    Verb.STAT: Pop3Session._stat, Verb.LIST: Pop3Session._list, Verb.UIDL: Pop3Session._uidl,
    Verb.RETR: Pop3Session._retr, Verb.TOP: Pop3Session._retr, Verb.DELE: Pop3Session._dele,
    Verb.NOOP: Pop3Session._noop, Verb.RSET: Pop3Session._rset,
}
