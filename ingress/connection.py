"""The asyncio shell around ``ingress.protocol.SmtpCore``: it only moves bytes.

Owns: one connection's reads under absolute deadlines (one per command line,
one for the whole DATA/BDAT phase, one for the whole AUTH exchange: activity
does not extend them, so a client trickling a byte at a time is closed on
time), writes, the greeting pause that catches early talkers, the
STARTTLS upgrade, and passing the core's requests to the ``Handler``.

Must not: choose replies (the core and the handler do) or parse anything.
An unexpected exception while answering a request is logged and answered
``451 4.3.0``; its text never reaches the client.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from dataclasses import dataclass

from mailpipe.ingress import replies
from mailpipe.ingress.protocol import (AuthRequest, Close, MailRequest, MessageRequest, Output, Phase, RcptRequest,
                                      Reply, Session, Settings, SmtpCore, StartTls)

log = logging.getLogger("mailpipe.ingress")

READ_SIZE = 65536
MAX_STEPS = 100_000          # outputs handled per perform() call; a bound, never reached in practice


@dataclass(frozen=True)
class ListenerSpec:
    name: str                 #: "smtp", "submission" or "smtps"
    implicit_tls: bool = False
    auth_required: bool = False
    greet_pause: float = 0.0


class Connection:
    def __init__(self, ctx, handler, spec: ListenerSpec, settings: Settings,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ctx, self.handler, self.spec = ctx, handler, spec
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        session = Session(peer=tuple(peer) if peer else None, ssl=spec.implicit_tls)
        self.core = SmtpCore(settings, session)
        self.closing = False
        self.phase = Phase.COMMAND
        self.deadline = 0.0           #: loop time by which the client must finish the current phase

    async def run(self) -> None:
        early = await self._talked_early()
        if early is None:                 # closed without a word (a port probe): not a talker
            return
        if early:
            log.info("early talker from %s refused", self.core.session.peer)
            await self._perform(self.core.early_talker())
            return
        await self._perform(self.core.greeting())
        self._arm(self.core.phase)
        while not self.closing and not self.core.closed:
            data = await self._read()
            if data is None:
                await self._perform(self.core.timeout())
                return
            if not data:
                return
            outputs = self.core.receive(data)
            await self._perform(outputs)
            self._rearm(progressed=bool(outputs))

    def _arm(self, phase: Phase) -> None:
        cfg = self.ctx.config.ingress
        self.phase = phase
        limit = cfg.data_timeout if phase is Phase.DATA else cfg.command_timeout
        self.deadline = asyncio.get_running_loop().time() + limit

    def _rearm(self, progressed: bool) -> None:
        """A new deadline when the phase changes, or when a command line was completed (it got an answer).

        Within DATA/BDAT and AUTH the deadline set on entry stands until the phase ends.
        """
        phase = self.core.phase
        if phase is not self.phase or (progressed and phase is Phase.COMMAND):
            self._arm(phase)

    async def _talked_early(self) -> bool | None:
        """True: bytes before the greeting; False: the client waited; None: it hung up silently."""
        ip = self.core.session.peer[0] if self.core.session.peer else ""
        if self.spec.greet_pause <= 0 or self.ctx.passed.passed(ip):
            return False
        try:
            data = await asyncio.wait_for(self.reader.read(1), self.spec.greet_pause)
        except asyncio.TimeoutError:
            self.ctx.passed.remember(ip)
            return False
        return True if data else None

    async def _read(self) -> bytes | None:
        """Some bytes, b"" at EOF, None when the current deadline has passed."""
        try:
            async with asyncio.timeout_at(self.deadline):   # no extra task per read, unlike wait_for
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            return None

    async def _perform(self, outputs: list[Output]) -> None:
        queue = deque(outputs)
        for _ in range(MAX_STEPS):
            if not queue or self.closing:
                break
            out = queue.popleft()
            if isinstance(out, Reply):
                self.writer.write(out.text.encode("utf-8", "replace") + b"\r\n")
            elif isinstance(out, Close):
                self.closing = True
            elif isinstance(out, StartTls):
                if not await self._upgrade():
                    self.closing = True
            else:
                reply, identity = await self._answer(out)
                queue.extend(self.core.resolve(reply, identity=identity))
        await self._drain()

    async def _answer(self, request) -> tuple[str, str | None]:
        session, envelope = self.core.session, self.core.envelope
        try:
            if isinstance(request, AuthRequest):
                return await self.handler.auth(session, request)
            if isinstance(request, MailRequest):
                return await self.handler.mail(session, request), None
            if isinstance(request, RcptRequest):
                return await self.handler.rcpt(session, envelope, request), None
            if isinstance(request, MessageRequest):
                return await self.handler.message(session, request.envelope), None
        except Exception:
            log.exception("ingress: error answering %s from %s", type(request).__name__, session.peer)
        return replies.LOCAL_ERROR, None

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self.ctx.config.ingress.command_timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            self.closing = True

    async def _upgrade(self) -> bool:
        """STARTTLS: refuse if plaintext is still waiting (command injection), else handshake.

        Nothing here may yield to the loop between writing "220 Ready" and ``start_tls``
        (which pauses reading first): the client's ClientHello must reach the TLS layer,
        not the plaintext reader. So no ``wait_for`` (a new task); the handshake has its own timeout.
        """
        if getattr(self.reader, "_buffer", b""):
            log.warning("STARTTLS from %s with pipelined plaintext; closing", self.core.session.peer)
            return False
        try:
            await self.writer.start_tls(self.ctx.tls.context,
                                        ssl_handshake_timeout=self.ctx.config.ingress.tls_handshake_timeout)
        except (asyncio.TimeoutError, ssl.SSLError, ConnectionError, OSError) as exc:
            log.info("STARTTLS handshake with %s failed: %s", self.core.session.peer, type(exc).__name__)
            return False
        self.core.tls_started()
        return True
