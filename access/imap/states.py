"""IMAP connection states (RFC 3501 section 3) and the one table of legal commands and transitions.

Rules:

- a command not allowed in the current state is answered ``BAD`` and changes nothing;
- a transition happens only when the command completed ``OK``; a failed
  SELECT/EXAMINE while a mailbox is selected leaves the AUTHENTICATED state
  (RFC 3501 6.3.1), every other failure keeps the state;
- LOGOUT always ends in LOGOUT.

Must not: perform I/O or know how commands are carried out.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


N, A, S = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
ANY = frozenset({N, A, S})
AUTH = frozenset({A, S})
SEL = frozenset({S})

ALLOWED: dict[str, frozenset[State]] = {
    "CAPABILITY": ANY, "NOOP": ANY, "LOGOUT": ANY, "ID": ANY,
    "STARTTLS": frozenset({N}), "AUTHENTICATE": frozenset({N}), "LOGIN": frozenset({N}),
    "SELECT": AUTH, "EXAMINE": AUTH, "CREATE": AUTH, "DELETE": AUTH, "RENAME": AUTH,
    "SUBSCRIBE": AUTH, "UNSUBSCRIBE": AUTH, "LIST": AUTH, "LSUB": AUTH, "STATUS": AUTH,
    "APPEND": AUTH, "NAMESPACE": AUTH, "ENABLE": AUTH, "IDLE": AUTH,
    "CHECK": SEL, "CLOSE": SEL, "UNSELECT": SEL, "EXPUNGE": SEL, "SEARCH": SEL,
    "FETCH": SEL, "STORE": SEL, "COPY": SEL, "MOVE": SEL, "UID": SEL,
}

# (state, command) -> state after an OK completion
ON_OK: dict[tuple[State, str], State] = {
    (N, "LOGIN"): A, (N, "AUTHENTICATE"): A,
    (A, "SELECT"): S, (A, "EXAMINE"): S, (S, "SELECT"): S, (S, "EXAMINE"): S,
    (S, "CLOSE"): A, (S, "UNSELECT"): A,
}
# (state, command) -> state after a NO completion
ON_NO: dict[tuple[State, str], State] = {
    (S, "SELECT"): A, (S, "EXAMINE"): A,
}


def allowed(state: State, command: str) -> bool:
    return state in ALLOWED.get(command, frozenset())


def known(command: str) -> bool:
    return command in ALLOWED


def after(state: State, command: str, ok: bool) -> State:
    if command == "LOGOUT":
        return State.LOGOUT
    table = ON_OK if ok else ON_NO
    return table.get((state, command), state)
