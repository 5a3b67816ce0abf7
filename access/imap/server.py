"""The asyncio shell of the IMAP server: listeners, connections, TLS, timeouts. It only moves bytes.

Owns: binding ``[imap] listen:port`` (STARTTLS offered when a certificate is
configured) and ``listen:tls_port`` (implicit TLS, RFC 8314, only with a
certificate); feeding received bytes to ``CommandParser`` and events to
``Session`` (run in worker threads, since storage calls block); writing
outcomes; STARTTLS upgrade (discarding anything pipelined before it); IDLE
polling every ``[imap] idle_poll`` seconds; ``* BYE`` to every session on
``stop()``; admission: at most ``[imap] max_connections`` connections, and
none while the process is short of file descriptors (``core.descriptors``),
refused at greeting time with ``* BYE [UNAVAILABLE]``.

Timeouts are absolute deadlines, never extended by mere activity: an
unauthenticated connection must log in within ``[imap] login_timeout`` of
connecting; each command (with its literals) must be complete within
``[imap] idle_timeout`` of the previous one's end (the autologout timer);
TLS handshakes within ``TLS_HANDSHAKE_TIMEOUT``.

Must not: interpret IMAP syntax or touch the mailstore.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from mailpipe.access.imap import replies
from mailpipe.access.imap.limits import Registry
from mailpipe.access.imap.literals import SPILL_OVER, Spiller
from mailpipe.access.imap.parser import CONTINUE, NEED_DATA, CommandParser, Line
from mailpipe.access.imap.session import Action, Env, Session
from mailpipe.core import authlimit
from mailpipe.core.authlimit import LoginLimiter
from mailpipe.core.clock import Clock
from mailpipe.core.descriptors import DescriptorReserve

log = logging.getLogger("mailpipe.imap")
READ_SIZE = 65536
PRE_AUTH_LITERAL = 8192   #: literal size limit before login (user names, passwords, SASL)
TLS_HANDSHAKE_TIMEOUT = 30.0
SHORTAGE_LOG_EVERY = 60.0  #: seconds between log lines about refusals for want of descriptors


class ImapService:
    def __init__(self, config, directory, tls, clock: Clock | None = None, *,
                 limiter: LoginLimiter | None = None) -> None:
        """`limiter`: the process's login limiter, shared with SMTP and POP3 (default: one of its own)."""
        self.config = config
        self.directory = directory
        self.tls = tls
        self.limiter = limiter or authlimit.from_config(config.auth, clock)
        self.registry = Registry(config.imap.max_connections_per_user, config.imap.max_connections_per_ip)
        self.reserve = DescriptorReserve()
        self._servers: list[asyncio.Server] = []
        self._connections: set[_Connection] = set()
        self._shortage_logged = float("-inf")

    async def start(self) -> None:
        imap = self.config.imap
        plain = await asyncio.start_server(functools.partial(self._accept, implicit=False),
                                           imap.listen, imap.port)
        self._servers.append(plain)
        if self.tls.context is not None:
            secure = await asyncio.start_server(functools.partial(self._accept, implicit=True),
                                                imap.listen, imap.tls_port, ssl=self.tls.context,
                                                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
            self._servers.append(secure)
        log.info("imap: listening on %s", self.addresses)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            conn.shutdown()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers.clear()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for server in self._servers for sock in server.sockets]

    def _unavailable(self) -> str | None:
        """Why a new connection must be refused now (a BYE text), None to admit it."""
        if len(self._connections) >= self.config.imap.max_connections:
            return replies.BYE_UNAVAILABLE
        if not self.reserve.admit():
            now = asyncio.get_running_loop().time()
            if now - self._shortage_logged >= SHORTAGE_LOG_EVERY:
                self._shortage_logged = now
                log.warning("imap: refusing connections: few file descriptors left for the other servers")
            return replies.BYE_UNAVAILABLE
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                      implicit: bool) -> None:
        peer = (writer.get_extra_info("peername") or ("", 0))[0]
        refusal = self._unavailable()
        if refusal is None:
            if self.registry.connect(peer):
                await self._serve(reader, writer, peer, implicit)
                return
            refusal = replies.BYE_TOO_MANY
        with contextlib.suppress(Exception):
            writer.write(replies.untagged(f"BYE {refusal}"))
            await asyncio.wait_for(writer.drain(), 5)
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str,
                     implicit: bool) -> None:
        env = Env(self.config, self.directory, self.limiter, self.registry, peer,
                  tls_available=self.tls.context is not None, tls_active=implicit)
        conn = _Connection(self, reader, writer, Session(env))
        conn.task = asyncio.current_task()
        self._connections.add(conn)
        try:
            await conn.run()
        except (ConnectionError, asyncio.IncompleteReadError, OSError, TimeoutError):
            pass
        except RuntimeError:
            if not writer.is_closing():    # uvloop: a write after the peer reset; anything else is a bug
                raise
        finally:
            self._connections.discard(conn)
            conn.release()
            self.registry.disconnect(peer)
            conn.session.close()
            writer.close()


# Commands that may block for long (password hashing, directory scans, reading every
# message) run in a worker thread; the rest run on the event loop, which is cheaper
# than a thread hand-off for short commands.
HEAVY = frozenset({"LOGIN", "AUTHENTICATE", "SELECT", "EXAMINE", "STATUS", "SEARCH", "COPY", "MOVE",
                   "APPEND", "RENAME", "DELETE", "EXPUNGE", "CLOSE"})


def _heavy(event) -> bool:
    name = getattr(event, "name", None)
    if name == "UID" and event.args:
        name = getattr(event.args[0], "upper", None)
    return name in HEAVY or isinstance(event, Line)


class _Connection:
    def __init__(self, service: ImapService, reader, writer, session: Session) -> None:
        cfg = service.config.imap
        self.service, self.reader, self.writer, self.session = service, reader, writer, session
        self.max_literal = cfg.max_literal
        self.spiller = Spiller(lambda: session.root)     # large APPEND literals go to the Maildir's tmp/
        self.parser = self._new_parser(cfg.max_line)
        self.timeout, self.poll = cfg.idle_timeout, cfg.idle_poll
        self.task: asyncio.Task | None = None
        self.closing = False
        self._read: asyncio.Task | None = None
        loop = asyncio.get_running_loop()
        self.login_deadline = loop.time() + cfg.login_timeout   #: absolute from connect, until login
        self.deadline = min(loop.time() + self.timeout, self.login_deadline)

    def _new_parser(self, max_line: int) -> CommandParser:
        return CommandParser(PRE_AUTH_LITERAL, max_line, spill_over=SPILL_OVER, spill=self.spiller)

    def release(self) -> None:
        """The connection ended: no spooled literal may stay behind in tmp/."""
        self.parser.abandon()
        self.spiller.cleanup()

    def shutdown(self) -> None:
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(Exception):
            self.writer.write(self.session.shutdown())
        if self._read is not None:
            self._read.cancel()

    async def _call(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)

    def _command_done(self) -> None:
        """Each completed command starts a new autologout period; before login never past the login deadline."""
        self.deadline = asyncio.get_running_loop().time() + self.timeout
        if self.session.user is None:
            self.deadline = min(self.deadline, self.login_deadline)

    async def _flush(self) -> None:
        """Drain to a client that may not read: bounded like a command (raises TimeoutError)."""
        until = asyncio.get_running_loop().time() + self.timeout
        async with asyncio.timeout_at(until if self.session.user is not None else min(until, self.login_deadline)):
            await self.writer.drain()

    async def run(self) -> None:
        self.writer.write(self.session.greeting())
        await self._flush()
        while not self.closing:
            data = await self._receive()
            if not data:
                return
            self.parser.receive_data(data)
            if not await self._drain_events():
                return

    async def _receive(self) -> bytes:
        """Next bytes from the client; polls the mailbox while IDLE; b"" on EOF or at the deadline."""
        loop = asyncio.get_running_loop()
        while not self.closing:
            remaining = self.deadline - loop.time()
            if remaining <= 0:
                self.writer.write(replies.untagged(f"BYE {replies.BYE_TIMEOUT}"))
                return b""
            if self._read is None:
                self._read = asyncio.ensure_future(self.reader.read(READ_SIZE))
            idling = self.session.idle_tag is not None
            done, _ = await asyncio.wait({self._read}, timeout=min(self.poll, remaining) if idling else remaining)
            if done:
                task, self._read = self._read, None
                return task.result() if not task.cancelled() else b""
            if idling and loop.time() < self.deadline:
                news = await self._call(self.session.idle_poll)
                if news:
                    self.writer.write(news)
                    await self._flush()
        return b""

    async def _drain_events(self) -> bool:
        """Handle every complete event in the buffer; False when the connection must end."""
        for _ in range(10_000):
            event = self.parser.next_event()
            if event is NEED_DATA:
                return True
            if event is CONTINUE:
                self.writer.write(replies.continuation())
                await self._flush()
                continue
            if _heavy(event):
                outcome = await self._call(self.session.handle, event)
            else:
                outcome = self.session.handle(event)
            if outcome.delay:
                await asyncio.sleep(outcome.delay)
            self.writer.write(outcome.data)
            await self._flush()
            if outcome.stream is not None:
                await self._stream(outcome)
            self._command_done()
            self.spiller.cleanup()       # a spooled literal the command did not take
            self.parser.line_mode = self.session.wants_line
            self.parser.max_literal = self.max_literal if self.session.user else PRE_AUTH_LITERAL
            if outcome.action is Action.CLOSE:
                return False
            if outcome.action is Action.STARTTLS:
                await self._starttls()
        return True

    async def _stream(self, outcome) -> None:
        """Write a long reply piece by piece, so memory stays bounded and other clients get turns."""
        try:
            for chunk in outcome.stream:
                self.writer.write(chunk)
                await self._flush()
        except (ConnectionError, OSError, TimeoutError):
            raise
        except Exception:   # a bug half-way: finish the command without leaking its text
            log.exception("imap: streamed reply failed for %s", self.session.user)
            self.writer.write(replies.tagged(outcome.tag, "NO", replies.NO_SERVER))

    async def _starttls(self) -> None:
        self.parser.abandon()
        self.parser = self._new_parser(self.parser.max_line)   # drop pipelined plaintext
        await self.writer.start_tls(self.service.tls.context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        self.session.env.tls_active = True
