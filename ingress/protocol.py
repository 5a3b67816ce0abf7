"""The SMTP server state machine. Pure, sans-I/O (h11 style).

Owns: line framing, the state of one connection, which command is legal in
which state (``ALLOWED``, one table), ESMTP parameters, the SASL dialogue
(PLAIN, LOGIN), limits counted per connection, and every reply's choice.

The I/O shell feeds bytes with ``receive(data)`` and gets a list of outputs:
``Reply`` (write it), ``StartTls`` (drain, then upgrade, then call
``tls_started()``), ``Close``, or one *request* (``AuthRequest``,
``MailRequest``, ``RcptRequest``, ``MessageRequest``) that needs the
directory, policy or spool. Processing pauses at a request; the shell
answers it with ``resolve(reply, identity=...)``, which continues with the
input still buffered (PIPELINING).

Rules: the only DATA terminator is CRLF.CRLF (see ``ingress.data``);
buffered plaintext after STARTTLS is discarded (RFC 3207 5, CVE-2011-0411);
AUTH is offered and accepted only with TLS or when the shell says plaintext
is fine (loopback + ``[auth] plaintext_on_loopback``); every error reply
counts toward ``max_errors``, after which the connection gets 421.

Must not: do I/O, look at the clock, or know about the spool or directory.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from mailpipe.ingress import replies
from mailpipe.ingress.chunks import ChunkCollector
from mailpipe.ingress.data import DataReader
from mailpipe.ingress.events import (AuthRequest, Close, Envelope, MailRequest, MessageRequest, Output, RcptRequest,
                            Reply, Request, Session, Settings, StartTls)
from mailpipe.ingress.grammar import OBSOLETE_VERBS, Command, Verb, parse_command
from mailpipe.ingress.sasl import SaslExchange

__all__ = ["ALLOWED", "AuthRequest", "Close", "Envelope", "MailRequest", "MessageRequest", "Output",
           "Phase", "RcptRequest", "Reply", "Session", "Settings", "SmtpCore", "StartTls", "State"]


class State(enum.Enum):
    FRESH = "fresh"          # greeted, no HELO/EHLO yet
    READY = "ready"          # HELO/EHLO done, no transaction
    MAIL = "mail"            # MAIL accepted, no recipient yet
    RCPT = "rcpt"            # at least one recipient accepted
    DATA = "data"            # reading message content
    CHUNK = "chunk"          # reading the octets of one BDAT chunk
    CHUNKS = "chunks"        # between BDAT chunks (more may follow)
    AUTH = "auth"            # waiting for a SASL response line
    WAIT = "wait"            # a request is out; input waits
    CLOSED = "closed"


class Phase(enum.Enum):
    """What the client is expected to finish before its deadline (the shell keeps the clock).

    COMMAND: the next command line; DATA: the whole DATA or BDAT phase (from DATA or the first
    BDAT to the final chunk or RSET); AUTH: the whole SASL exchange.
    """

    COMMAND = "command"
    DATA = "data"
    AUTH = "auth"


_ANY = frozenset({State.FRESH, State.READY, State.MAIL, State.RCPT, State.CHUNKS})
#: The one table of legal (verb, state) pairs; anything else is 503.
ALLOWED: dict[Verb, frozenset[State]] = {
    Verb.HELO: _ANY, Verb.EHLO: _ANY, Verb.RSET: _ANY, Verb.NOOP: _ANY, Verb.QUIT: _ANY,
    Verb.VRFY: _ANY, Verb.EXPN: _ANY, Verb.HELP: _ANY,
    Verb.STARTTLS: frozenset({State.FRESH, State.READY}),
    Verb.AUTH: frozenset({State.READY}),
    Verb.MAIL: frozenset({State.READY}),
    Verb.RCPT: frozenset({State.MAIL, State.RCPT}),
    Verb.DATA: frozenset({State.RCPT}),
    Verb.BDAT: frozenset({State.RCPT, State.CHUNKS}),
}
_SEQUENCE_REPLY = {Verb.MAIL: replies.NEED_HELO, Verb.RCPT: replies.NEED_MAIL, Verb.DATA: replies.NEED_RCPT,
                   Verb.BDAT: replies.NEED_RCPT,
                   Verb.AUTH: replies.NEED_HELO, Verb.STARTTLS: replies.BAD_SEQUENCE}
KNOWN_MAIL_PARAMS = frozenset({"SIZE", "BODY", "SMTPUTF8", "AUTH"})
BODY_VALUES = frozenset({"7BIT", "8BITMIME"})


def _address(command: Command) -> str:
    """The mailbox of MAIL or RCPT (the grammar never gives these commands none)."""
    assert command.address is not None
    return command.address


def is_error(reply: str) -> bool:
    return reply[:1] in ("4", "5")


class SmtpCore:
    def __init__(self, settings: Settings, session: Session | None = None) -> None:
        self.settings = settings
        self.session = session or Session()
        self.state = State.FRESH
        self.envelope = Envelope()
        self.errors = 0
        self.messages = 0
        self._buf = bytearray()           # deleting from the front of a bytearray is cheap
        self._discarding = False          # inside an over-long line
        self._data: DataReader | None = None
        self._pending: Request | None = None
        self._sasl: SaslExchange | None = None
        self._chunks: ChunkCollector | None = None
        self._chunk: _Chunk | None = None
        self._out: list[Output] = []

    # -- API for the I/O shell -------------------------------------------
    def greeting(self) -> list[Output]:
        return [Reply(replies.GREETING.format(hostname=self.settings.hostname))]

    def early_talker(self) -> list[Output]:
        self.state = State.CLOSED
        return [Reply(replies.EARLY_TALKER), Close()]

    def timeout(self) -> list[Output]:
        self.state = State.CLOSED
        return [Reply(replies.TIMEOUT), Close()]

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def in_data(self) -> bool:
        return self.state in (State.DATA, State.CHUNK)

    @property
    def phase(self) -> Phase:
        """Which deadline the shell applies now (see ``Phase``)."""
        if self.state in (State.DATA, State.CHUNK, State.CHUNKS):
            return Phase.DATA
        if self.state is State.AUTH:
            return Phase.AUTH
        return Phase.COMMAND

    def receive(self, data: bytes) -> list[Output]:
        self._buf += data
        return self._run()

    def resolve(self, reply: str, *, identity: str | None = None) -> list[Output]:
        """The shell's answer to the pending request; continues with buffered input."""
        request, self._pending = self._pending, None
        if request is None:
            raise RuntimeError("resolve() without a pending request")
        self.state = self._after(request, reply, identity)
        self._reply(reply)
        return self._run()

    def tls_started(self) -> None:
        """After the handshake: forget everything said in clear, AUTH included (RFC 3207 4.2)."""
        self.session.ssl = True
        self.session.authenticated, self.session.auth_data = False, None
        self.session.host_name = None
        self.session.extended_smtp = False
        self.envelope = Envelope()
        self._buf.clear()
        self.state = State.FRESH

    # -- the loop --------------------------------------------------------
    def _run(self) -> list[Output]:
        while self.state not in (State.WAIT, State.CLOSED):
            if self.state is State.DATA:
                if not self._feed_data():
                    break
                continue
            if self.state is State.CHUNK:
                if not self._feed_chunk():
                    break
                continue
            line = self._next_line()
            if line is None:
                break
            if self.state is State.AUTH:
                self._sasl_line(line)
            else:
                self._command(line)
        out, self._out = self._out, []
        return out

    def _next_line(self) -> bytes | None:
        """The next command line without its ending (LF or CRLF); over-long lines get 500 5.5.2."""
        limit = self.settings.max_line
        while not self.closed:
            index = self._buf.find(b"\n")
            if index < 0:
                if len(self._buf) > limit:
                    self._buf.clear()
                    if not self._discarding:
                        self._discarding = True
                        self._too_long()
                return None
            line = bytes(self._buf[:index])
            del self._buf[:index + 1]
            if not self._discarding and index + 1 <= limit:
                return line[:-1] if line.endswith(b"\r") else line
            if not self._discarding:
                self._too_long()
            self._discarding = False
        return None

    def _too_long(self) -> None:
        if self.state is State.AUTH:
            self._sasl, self.state = None, State.READY
        self._reply(replies.LINE_TOO_LONG)

    def _reply(self, text: str) -> None:
        self._out.append(Reply(text))
        if is_error(text) and not text.startswith("421"):
            self.errors += 1
            if self.errors >= self.settings.max_errors:
                self._close(replies.TOO_MANY_ERRORS)

    def _close(self, text: str) -> None:
        self._out.extend([Reply(text), Close()])
        self.state = State.CLOSED
        self._buf.clear()

    def _request(self, request: Request) -> None:
        self._pending = request
        self._out.append(request)
        self.state = State.WAIT

    # -- commands ----------------------------------------------------------
    def _command(self, line: bytes) -> None:
        parsed = parse_command(line)
        if parsed == replies.SYNTAX_BDAT:        # its octets would be read as commands: stop here
            self._reply(parsed)
            self._close(replies.BDAT_BROKEN)
            return
        if isinstance(parsed, str):
            self._reply(parsed)
            return
        if parsed.verb is Verb.BDAT:
            self._bdat(parsed)
            return
        if parsed.verb in OBSOLETE_VERBS:
            self._reply(replies.OBSOLETE)
            return
        if self.state not in ALLOWED[parsed.verb]:
            self._reply(self._sequence_reply(parsed.verb))
            return
        _HANDLERS[parsed.verb](self, parsed)

    def _sequence_reply(self, verb: Verb) -> str:
        if verb is Verb.MAIL and self.state in (State.MAIL, State.RCPT, State.CHUNKS):
            return replies.NESTED_MAIL
        if verb is Verb.DATA and self.state is State.CHUNKS:
            return replies.DATA_AFTER_BDAT
        if verb is Verb.AUTH and self.state in (State.MAIL, State.RCPT):
            return replies.AUTH_IN_TRANSACTION
        if verb is Verb.DATA and self.state is State.FRESH:
            return replies.NEED_HELO
        if verb is Verb.RCPT and self.state is State.FRESH:
            return replies.NEED_HELO
        return _SEQUENCE_REPLY.get(verb, replies.BAD_SEQUENCE)

    def _helo(self, command: Command) -> None:
        self.session.host_name = command.argument
        self.session.extended_smtp = command.verb is Verb.EHLO
        self.envelope, self._chunks = Envelope(), None
        self.state = State.READY
        if command.verb is Verb.HELO:
            self._reply(replies.HELO_OK.format(hostname=self.settings.hostname))
            return
        lines = [self.settings.hostname] + self.extensions()
        text = "\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{item}" for i, item in enumerate(lines))
        self._reply(text)

    def extensions(self) -> list[str]:
        items = ["PIPELINING", f"SIZE {self.settings.max_size}", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                 "CHUNKING"]
        if self.settings.tls_available and not self.session.ssl:
            items.append("STARTTLS")
        if self.auth_allowed and not self.session.authenticated:
            items.append("AUTH PLAIN LOGIN")
        return items

    @property
    def auth_allowed(self) -> bool:
        return self.session.ssl or self.settings.plaintext_auth

    def _simple(self, command: Command) -> None:
        verb = command.verb
        if verb is Verb.QUIT:
            self._close(replies.BYE)
            return
        if verb is Verb.RSET:
            self.envelope, self._chunks = Envelope(), None
            if self.state in (State.MAIL, State.RCPT, State.CHUNKS):
                self.state = State.READY
        self._reply({Verb.RSET: replies.OK, Verb.NOOP: replies.OK, Verb.VRFY: replies.VRFY,
                     Verb.EXPN: replies.EXPN_REFUSED, Verb.HELP: replies.HELP}[verb])

    def _starttls(self, command: Command) -> None:
        if self.session.ssl:
            self._reply(replies.TLS_ACTIVE)
        elif not self.settings.tls_available:
            self._reply(replies.TLS_UNAVAILABLE)
        else:
            self._buf.clear()
            self._out.extend([Reply(replies.TLS_READY), StartTls()])
            self.state = State.WAIT

    def _mail(self, command: Command) -> None:
        if self.settings.auth_required and not self.session.authenticated:
            self._reply(replies.AUTH_REQUIRED)
            return
        if self.messages >= self.settings.max_messages:
            self._close(replies.TOO_MANY_MESSAGES)
            return
        if command.params and not self.session.extended_smtp:
            self._reply(replies.UNKNOWN_PARAM)          # parameters are ESMTP: not after HELO
            return
        address = _address(command)
        problem, smtputf8 = self._mail_params(command.params)
        if problem is None and not address.isascii() and not smtputf8:
            problem = replies.NON_ASCII
        if problem is not None:
            self._reply(problem)
            return
        self.envelope = Envelope(mail_from=address, mail_options=command.params, smtputf8=smtputf8)
        self._request(MailRequest(address, command.params))

    def _mail_params(self, params: tuple) -> tuple[str | None, bool]:
        seen: set[str] = set()
        for key, value in params:
            if key not in KNOWN_MAIL_PARAMS or key in seen:
                return replies.UNKNOWN_PARAM, False
            seen.add(key)
            if key == "SIZE":
                if value is None or not value.isdigit() or len(value) > 20:
                    return replies.BAD_PARAM_VALUE, False
                if int(value) > self.settings.max_size:
                    return replies.SIZE_EXCEEDED, False
            elif key == "BODY" and (value or "").upper() not in BODY_VALUES:
                return replies.BAD_PARAM_VALUE, False
            elif key == "SMTPUTF8" and value is not None:
                return replies.BAD_PARAM_VALUE, False
        return None, "SMTPUTF8" in seen

    def _rcpt(self, command: Command) -> None:
        address = _address(command)
        if command.params:                              # no RCPT parameter is advertised
            self._reply(replies.UNKNOWN_PARAM)
        elif not address.isascii() and not self.envelope.smtputf8:
            self._reply(replies.NON_ASCII)
        elif len(self.envelope.rcpt_tos) >= self.settings.max_recipients:
            self._reply(replies.TOO_MANY_RECIPIENTS)
        else:
            self._request(RcptRequest(address, command.params))

    def _start_data(self, command: Command) -> None:
        self._data = DataReader(self.settings.max_size, self.settings.max_header_size)
        self.state = State.DATA
        self._out.append(Reply(replies.START_DATA))

    def _feed_data(self) -> bool:
        """Give buffered bytes to the DATA reader; True when the message ended."""
        assert self._data is not None                    # state DATA has a reader
        data, self._buf = bytes(self._buf), bytearray()
        result = self._data.feed(data) if data else None
        if result is None:
            return False
        self._data = None
        self._buf = bytearray(result.leftover)
        if result.reply is not None:
            self.envelope = Envelope()
            self.state = State.READY
            self._reply(result.reply)
            return True
        self.envelope.original_content = result.content
        self._request(MessageRequest(self.envelope))
        return True

    # -- BDAT (RFC 3030) -----------------------------------------------------
    def _bdat(self, command: Command) -> None:
        """Always read the announced octets; a BDAT out of sequence is answered after them."""
        problem = None if self.state in ALLOWED[Verb.BDAT] else self._sequence_reply(Verb.BDAT)
        if problem is None and self._chunks is None:
            self._chunks = ChunkCollector(self.settings.max_size, self.settings.max_header_size)
        self._chunk = _Chunk(command.chunk_size, command.chunk_size, command.last, problem, self.state)
        self.state = State.CHUNK

    def _feed_chunk(self) -> bool:
        """Take this chunk's octets from the buffer; True when the chunk is complete."""
        chunk = self._chunk
        assert chunk is not None                         # state CHUNK has a chunk
        if chunk.remaining:
            take = bytes(self._buf[:chunk.remaining])
            del self._buf[:len(take)]
            chunk.remaining -= len(take)
            if chunk.problem is None and self._chunks is not None:
                self._chunks.add(take)
            if chunk.remaining:
                return False
        self._chunk = None
        if chunk.problem is not None:
            self.state = chunk.before
            self._reply(chunk.problem)
        elif not chunk.last:
            self.state = State.CHUNKS
            self._out.append(Reply(replies.CHUNK_OK.format(size=chunk.size)))
        else:
            self._end_chunks()
        return True

    def _end_chunks(self) -> None:
        assert self._chunks is not None                  # a last chunk without a problem has a collector
        result, self._chunks = self._chunks.finish(), None
        if result.reply is not None:
            self.envelope = Envelope()
            self.state = State.READY
            self._reply(result.reply)
            return
        self.envelope.original_content = result.content
        self._request(MessageRequest(self.envelope))

    # -- AUTH (RFC 4954) ----------------------------------------------------
    def _auth(self, command: Command) -> None:
        if self.session.authenticated:
            self._reply(replies.ALREADY_AUTH)
            return
        if not self.auth_allowed:
            self._reply(replies.AUTH_NEEDS_TLS)
            return
        mechanism, _, initial = command.argument.partition(" ")
        if not mechanism or " " in initial.strip():
            self._reply(replies.SYNTAX_AUTH)
            return
        exchange = SaslExchange.start(mechanism)
        if exchange is None:
            self._reply(replies.AUTH_MECHANISM)
            return
        self._sasl = exchange
        self._sasl_step(initial.strip().encode("ascii", "replace") if initial.strip() else None)

    def _sasl_line(self, line: bytes) -> None:
        self._sasl_step(line.strip())

    def _sasl_step(self, line: bytes | None) -> None:
        assert self._sasl is not None                    # state AUTH has an exchange
        result = self._sasl.step(line)
        self.state = State.READY
        if isinstance(result, AuthRequest):
            self._sasl = None
            self._request(result)
        elif result.startswith("334"):
            self._out.append(Reply(result))
            self.state = State.AUTH
        else:
            self._sasl = None
            self._reply(result)

    # -- after a request --------------------------------------------------
    def _after(self, request: Request, reply: str, identity: str | None) -> State:
        ok = reply[:1] == "2"
        if isinstance(request, AuthRequest):
            if ok and identity:
                self.session.authenticated, self.session.auth_data = True, identity
            return State.READY
        if isinstance(request, MailRequest):
            if not ok:
                self.envelope = Envelope()
            return State.MAIL if ok else State.READY
        if isinstance(request, RcptRequest):
            if ok:
                self.envelope.rcpt_tos.append(request.address)
            return State.RCPT if self.envelope.rcpt_tos else State.MAIL
        self.messages += 1
        self.envelope = Envelope()
        return State.READY


@dataclass
class _Chunk:
    size: int
    remaining: int
    last: bool
    problem: str | None          #: the reply once read, when this BDAT is out of sequence
    before: State                #: state to return to after an out-of-sequence chunk


_HANDLERS = {
    Verb.HELO: SmtpCore._helo, Verb.EHLO: SmtpCore._helo,
    Verb.RSET: SmtpCore._simple, Verb.NOOP: SmtpCore._simple, Verb.QUIT: SmtpCore._simple,
    Verb.VRFY: SmtpCore._simple, Verb.EXPN: SmtpCore._simple, Verb.HELP: SmtpCore._simple,
    Verb.STARTTLS: SmtpCore._starttls, Verb.AUTH: SmtpCore._auth,
    Verb.MAIL: SmtpCore._mail, Verb.RCPT: SmtpCore._rcpt, Verb.DATA: SmtpCore._start_data,
}
