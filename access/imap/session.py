"""The IMAP session core: one connection's state machine, with no network I/O.

Owns: dispatching parsed events (``access.imap.parser``) through the state
table (``access.imap.states``) to command handlers, authentication (LOGIN,
AUTHENTICATE PLAIN / LOGIN with SASL-IR), STARTTLS and IDLE bookkeeping, and
the ``Outcome`` that tells the asyncio shell what to send and do next.

Handlers live in ``access.imap.mailboxes`` (mailbox-level commands) and
``access.imap.messages`` (commands on the selected mailbox); the table
``HANDLERS`` names every one of them, so nothing is found by name scanning.

Errors: a handler raises ``grammar.Syntax`` -> tagged BAD with its text,
``Refused`` -> tagged NO with a named reply; anything else is logged and
answered ``NO [SERVERBUG]`` without exception text.

Must not: read sockets, sleep, or format storage paths for clients.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from mailpipe.access.imap import grammar, replies, states
from mailpipe.access.imap.grammar import Syntax
from mailpipe.access.imap.limits import Registry
from mailpipe.access.imap.parser import Command, Line, Malformed
from mailpipe.access.imap.selected import View
from mailpipe.access.imap.states import State
from mailpipe.core import sasl
from mailpipe.core.authlimit import LoginLimiter
from mailpipe.core.config import Config
from mailpipe.core.tls import is_loopback
from mailpipe.mailstore.directory import Directory

log = logging.getLogger("mailpipe.imap")


class Action(enum.Enum):
    NONE = "none"
    STARTTLS = "starttls"     # send data, then upgrade the connection
    CLOSE = "close"           # send data, then close
    IDLE = "idle"             # send data, then poll ``idle_poll`` until a Line arrives


@dataclass(frozen=True)
class Outcome:
    data: bytes = b""
    action: Action = Action.NONE
    delay: float = 0.0        # wait this long before sending (failed logins)
    stream: Iterator[bytes] | None = None   # more output after `data`, ending with the tagged reply
    tag: str = ""             # the command's tag, for a NO if `stream` fails half-way


class Refused(Exception):
    """The command is well-formed but cannot be done: tagged NO with `reply` (a replies constant)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass
class Env:
    """What a session needs from outside, injected by the shell (or a test)."""

    config: Config
    directory: Directory
    limiter: LoginLimiter
    registry: Registry
    peer: str
    tls_available: bool
    tls_active: bool = False


@dataclass
class Pending:
    """A multi-line AUTHENTICATE in progress."""

    tag: str
    exchange: sasl.SaslExchange


class Session:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.root: Path | None = None
        self.view: View | None = None
        self.idle_tag: str | None = None
        self.auth: Pending | None = None
        self.enabled: set[str] = set()

    # -- entry points -------------------------------------------------------------
    def greeting(self) -> bytes:
        return replies.untagged(f"OK [{self.capability()}] {replies.GREETING}")

    @property
    def wants_line(self) -> bool:
        return self.idle_tag is not None or self.auth is not None

    def handle(self, event) -> Outcome:
        if isinstance(event, Malformed):
            if event.fatal:
                return Outcome(replies.untagged(f"BYE {replies.BYE_FATAL}"), Action.CLOSE)
            return Outcome(replies.tagged(event.tag, "BAD", event.reason))
        if isinstance(event, Line):
            return self._line(event.data)
        if isinstance(event, Command):
            return self._command(event)
        return Outcome()

    def shutdown(self) -> bytes:
        return replies.untagged(f"BYE {replies.BYE_SHUTDOWN}")

    def idle_poll(self) -> bytes:
        if self.view is None:
            return b""
        return b"".join(replies.untagged(line) for line in self.view.refresh(True))

    def close(self) -> None:
        if self.user is not None:
            self.env.registry.release(self.user)
            self.user = None

    # -- dispatch -----------------------------------------------------------------
    def _command(self, cmd: Command) -> Outcome:
        name = cmd.name
        if not states.known(name):
            return Outcome(replies.tagged(cmd.tag, "BAD", replies.BAD_UNKNOWN))
        if not states.allowed(self.state, name):
            return Outcome(replies.tagged(cmd.tag, "BAD", replies.BAD_STATE))
        handler = HANDLERS[name]
        try:
            outcome = handler(self, cmd)
            ok = True
        except Syntax as exc:
            return Outcome(replies.tagged(cmd.tag, "BAD", str(exc) or replies.BAD_SYNTAX))
        except Refused as exc:
            outcome, ok = Outcome(replies.tagged(cmd.tag, "NO", exc.reply)), False
        except Exception:   # a bug must not kill the connection or leak its text
            log.exception("imap: %s failed for %s", name, self.user)
            outcome, ok = Outcome(replies.tagged(cmd.tag, "NO", replies.NO_SERVER)), False
        if isinstance(outcome, bytes):
            outcome = Outcome(outcome)
        if outcome.data.startswith(b"+") or outcome.action is Action.IDLE:
            return outcome
        self._transition(name, ok and _is_ok(outcome.data, cmd.tag))
        return outcome

    def _transition(self, name: str, ok: bool) -> None:
        new = states.after(self.state, name, ok)
        if new is not State.SELECTED and self.state is State.SELECTED:
            self.view = None
        self.state = new

    def updates(self, allow_expunge: bool = True) -> bytes:
        """Untagged news about the selected mailbox, sent before a tagged reply."""
        if self.view is None:
            return b""
        return b"".join(replies.untagged(line) for line in self.view.refresh(allow_expunge))

    # -- capability / auth ----------------------------------------------------------
    def login_allowed(self) -> bool:
        if self.env.tls_active:
            return True
        return bool(self.env.config.auth.plaintext_on_loopback and is_loopback(self.env.peer))

    def capability(self) -> str:
        if self.state is not State.NOT_AUTHENTICATED:
            return "CAPABILITY " + " ".join(replies.CAPABILITIES_BASE)
        return replies.capability_line(self.env.tls_active, self.login_allowed(), self.env.tls_available)

    def authenticate(self, tag: str, user: str, password: str) -> Outcome:
        """LOGIN and AUTHENTICATE end here: one reserved attempt of the shared login limiter,
        one password check; a name or password that is not UTF-8 is simply a failed login."""
        env = self.env
        ticket = env.limiter.reserve(env.peer, user)
        if ticket is None:
            log.warning("imap: login refused for %r from %s: too many failures", user, env.peer)
            return Outcome(replies.tagged(tag, "NO", replies.NO_LOCKED))
        try:
            canonical = env.directory.authenticate(user, password)
        except BaseException:
            env.limiter.release(ticket)
            raise
        if canonical is None:
            delay = env.limiter.failure(ticket)
            log.info("imap: failed login for %r from %s", user, env.peer)
            return Outcome(replies.tagged(tag, "NO", replies.NO_AUTH), delay=delay)
        env.limiter.success(ticket)
        if not env.registry.acquire(canonical, env.peer):
            return Outcome(replies.tagged(tag, "NO", replies.NO_TOO_MANY))
        self.user = canonical
        self.root = _maildir(env.config, canonical)
        self.state = State.AUTHENTICATED
        return Outcome(replies.tagged(tag, "OK", f"[{self.capability()}] {replies.OK_LOGIN}"))

    def _line(self, data: bytes) -> Outcome:
        if self.idle_tag is not None:
            tag, self.idle_tag = self.idle_tag, None
            if data.strip().upper() != b"DONE":
                return Outcome(replies.tagged(tag, "BAD", "Expected DONE"))
            return Outcome(self.updates() + replies.tagged(tag, "OK", replies.OK_IDLE_DONE))
        if self.auth is not None:
            return _auth_step(self, data)
        return Outcome()


def _is_ok(data: bytes, tag: str) -> bool:
    return (b"\r\n" + data).rfind(f"\r\n{tag} OK".encode()) >= 0


def _maildir(config: Config, user: str) -> Path:
    from mailpipe.mailstore.maildir import ensure_maildir, maildir_path
    root = maildir_path(config.data_dir, user)
    ensure_maildir(root)
    return root


# -- simple commands ---------------------------------------------------------------------

def cmd_capability(s: Session, cmd: Command) -> bytes:
    return replies.untagged(s.capability()) + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_noop(s: Session, cmd: Command) -> bytes:
    return s.updates() + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_logout(s: Session, cmd: Command) -> Outcome:
    s.close()
    data = replies.untagged(f"BYE {replies.BYE_LOGOUT}") + replies.tagged(cmd.tag, "OK", replies.OK_DONE)
    return Outcome(data, Action.CLOSE)


def cmd_starttls(s: Session, cmd: Command) -> Outcome:
    if s.env.tls_active:
        return Outcome(replies.tagged(cmd.tag, "BAD", replies.BAD_TLS_ACTIVE))
    if not s.env.tls_available:
        return Outcome(replies.tagged(cmd.tag, "BAD", replies.BAD_NO_TLS))
    return Outcome(replies.tagged(cmd.tag, "OK", replies.OK_STARTTLS), Action.STARTTLS)


def cmd_id(s: Session, cmd: Command) -> bytes:
    return replies.untagged('ID ("name" "mailpipe")') + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_enable(s: Session, cmd: Command) -> bytes:
    if not cmd.args:
        raise Syntax("ENABLE needs a capability")
    for token in cmd.args:
        grammar.atom(token)
    return replies.untagged("ENABLED") + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_namespace(s: Session, cmd: Command) -> bytes:
    return replies.untagged('NAMESPACE (("" ".")) NIL NIL') + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_idle(s: Session, cmd: Command) -> Outcome:
    if cmd.args:
        raise Syntax("IDLE takes no arguments")
    s.idle_tag = cmd.tag
    return Outcome(s.updates() + replies.continuation(replies.CONT_IDLING), Action.IDLE)


def cmd_login(s: Session, cmd: Command) -> Outcome:
    if len(cmd.args) != 2:
        raise Syntax("LOGIN needs user and password")
    if not s.login_allowed():
        return Outcome(replies.tagged(cmd.tag, "NO", replies.NO_LOGIN_DISABLED))
    user, password = grammar.astring(cmd.args[0]), grammar.astring(cmd.args[1])
    return s.authenticate(cmd.tag, user, password)


def cmd_authenticate(s: Session, cmd: Command) -> Outcome:
    if not cmd.args or len(cmd.args) > 2:
        raise Syntax("AUTHENTICATE needs a mechanism")
    exchange = sasl.SaslExchange.start(grammar.atom(cmd.args[0]))
    if exchange is None:
        return Outcome(replies.tagged(cmd.tag, "NO", replies.NO_MECH))
    if not s.login_allowed():
        return Outcome(replies.tagged(cmd.tag, "NO", replies.NO_LOGIN_DISABLED))
    s.auth = Pending(cmd.tag, exchange)
    return _auth_step(s, grammar.astring_bytes(cmd.args[1]) if len(cmd.args) == 2 else None)


# How a SASL exchange that ended without credentials is answered (RFC 3501 6.2.2).
SASL_FAILURES = {
    sasl.Reason.CANCELLED: ("BAD", replies.BAD_AUTH_CANCELLED),
    sasl.Reason.BAD_BASE64: ("BAD", "Invalid base64"),
    sasl.Reason.MALFORMED: ("BAD", "Invalid SASL response"),
    sasl.Reason.BAD_UTF8: ("NO", replies.NO_AUTH),
    sasl.Reason.AUTHZID: ("NO", replies.NO_AUTH),
}


def _auth_step(s: Session, data: bytes | None) -> Outcome:
    pending = s.auth
    assert pending is not None
    result = pending.exchange.step(data)
    if isinstance(result, sasl.Challenge):
        return Outcome(replies.continuation(result.text))
    s.auth = None
    if isinstance(result, sasl.Failure):
        return Outcome(replies.tagged(pending.tag, *SASL_FAILURES[result.reason]))
    return s.authenticate(pending.tag, result.user, result.password)


from mailpipe.access.imap import mailboxes, messages  # noqa: E402  (they import Refused/Outcome from here)

Handler = Callable[[Session, Command], "Outcome | bytes"]

HANDLERS: dict[str, Handler] = {
    "CAPABILITY": cmd_capability, "NOOP": cmd_noop, "LOGOUT": cmd_logout, "STARTTLS": cmd_starttls,
    "ID": cmd_id, "ENABLE": cmd_enable, "NAMESPACE": cmd_namespace, "IDLE": cmd_idle,
    "LOGIN": cmd_login, "AUTHENTICATE": cmd_authenticate,
    **mailboxes.HANDLERS, **messages.HANDLERS,
}
