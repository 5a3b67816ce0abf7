"""POP3 session states and the one table of legal transitions (RFC 1939 section 3).

Rules:

- A session starts in AUTHORIZATION. USER/PASS or AUTH lead to CHECKING while
  the server checks the credentials and locks the maildrop; success goes to
  TRANSACTION, failure back to AUTHORIZATION.
- AUTH without an initial response goes to SASL, where the next line is a
  base64 response, not a command.
- QUIT in TRANSACTION enters UPDATE: only there are messages removed. QUIT in
  AUTHORIZATION closes without UPDATE.
- STLS (AUTHORIZATION only) passes through TLS_HANDSHAKE back to
  AUTHORIZATION with all earlier state forgotten (RFC 2595 section 4).
- A dropped connection, an idle timeout or too many errors closes from any
  state and never passes through UPDATE, so it deletes nothing.

Which commands each state accepts is ``ALLOWED``; anything else is answered
``-ERR`` with the reason and counted as an error.

Must not: do I/O or hold per-session data.
"""

from __future__ import annotations

import enum

from mailpipe.access.pop3.parser import Verb


class State(enum.Enum):
    __hash__ = object.__hash__      # members are singletons; Enum's hash is slow Python code

    AUTHORIZATION = "authorization"
    SASL = "sasl"
    CHECKING = "checking"
    TLS_HANDSHAKE = "tls-handshake"
    TRANSACTION = "transaction"
    UPDATE = "update"
    CLOSED = "closed"


class Trigger(enum.Enum):
    __hash__ = object.__hash__

    SASL_CONTINUE = "sasl-continue"   # AUTH needs another client response
    SASL_ABORT = "sasl-abort"         # "*" or malformed response
    CREDENTIALS = "credentials"       # PASS, or the last SASL response
    LOGIN_OK = "login-ok"
    LOGIN_FAILED = "login-failed"
    STLS = "stls"
    TLS_READY = "tls-ready"
    QUIT = "quit"
    COMMITTED = "committed"
    DROP = "drop"                     # connection lost, timeout, fatal error


TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.AUTHORIZATION, Trigger.SASL_CONTINUE): State.SASL,
    (State.AUTHORIZATION, Trigger.CREDENTIALS): State.CHECKING,
    (State.AUTHORIZATION, Trigger.STLS): State.TLS_HANDSHAKE,
    (State.AUTHORIZATION, Trigger.QUIT): State.CLOSED,
    (State.SASL, Trigger.SASL_CONTINUE): State.SASL,
    (State.SASL, Trigger.SASL_ABORT): State.AUTHORIZATION,
    (State.SASL, Trigger.CREDENTIALS): State.CHECKING,
    (State.CHECKING, Trigger.LOGIN_OK): State.TRANSACTION,
    (State.CHECKING, Trigger.LOGIN_FAILED): State.AUTHORIZATION,
    (State.TLS_HANDSHAKE, Trigger.TLS_READY): State.AUTHORIZATION,
    (State.TRANSACTION, Trigger.QUIT): State.UPDATE,
    (State.UPDATE, Trigger.COMMITTED): State.CLOSED,
}
for _state in State:
    TRANSITIONS[(_state, Trigger.DROP)] = State.CLOSED

ALLOWED: dict[State, frozenset[Verb]] = {
    State.AUTHORIZATION: frozenset({Verb.USER, Verb.PASS, Verb.AUTH, Verb.STLS, Verb.CAPA, Verb.QUIT}),
    State.TRANSACTION: frozenset({Verb.STAT, Verb.LIST, Verb.RETR, Verb.DELE, Verb.NOOP, Verb.RSET,
                                  Verb.TOP, Verb.UIDL, Verb.CAPA, Verb.QUIT}),
}


class IllegalTransition(RuntimeError):
    """A programming error: the core asked for a transition the table does not have."""


def next_state(state: State, trigger: Trigger) -> State:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"{trigger.value} in {state.value}") from None


def allowed(state: State, verb: Verb) -> bool:
    return verb in ALLOWED.get(state, frozenset())
