"""The asyncio shell of the IMAP server: listeners, connections, TLS, timeouts. It only moves bytes.

Owns: binding ``[imap] listen:port`` (STARTTLS offered when a certificate is
configured) and ``listen:tls_port`` (implicit TLS, RFC 8314, only with a
certificate); feeding received bytes to ``CommandParser`` and events to
``Session`` (run in worker threads, since storage calls block); writing
outcomes; STARTTLS upgrade (discarding anything pipelined before it); IDLE
polling every ``[imap] idle_poll`` seconds; the autologout timer; ``* BYE``
to every session on ``stop()``.

Must not: interpret IMAP syntax or touch the mailstore.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from mailpipe.access.imap import replies
from mailpipe.access.imap.limits import Registry
from mailpipe.access.imap.parser import CONTINUE, NEED_DATA, CommandParser, Line
from mailpipe.access.imap.session import Action, Env, Session
from mailpipe.core.authlimit import FailureLimiter
from mailpipe.core.clock import Clock

log = logging.getLogger("mailpipe.imap")
READ_SIZE = 65536
PRE_AUTH_LITERAL = 8192   #: literal size limit before login (user names, passwords, SASL)


class ImapService:
    def __init__(self, config, directory, tls, clock: Clock | None = None) -> None:
        self.config = config
        self.directory = directory
        self.tls = tls
        self.limiter = FailureLimiter(config.auth.max_failures, config.auth.lockout_seconds, clock)
        self.registry = Registry(config.imap.max_connections_per_user, config.imap.max_connections_per_ip)
        self._servers: list[asyncio.base_events.Server] = []
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        imap = self.config.imap
        plain = await asyncio.start_server(functools.partial(self._accept, implicit=False),
                                           imap.listen, imap.port)
        self._servers.append(plain)
        if self.tls.context is not None:
            secure = await asyncio.start_server(functools.partial(self._accept, implicit=True),
                                                imap.listen, imap.tls_port, ssl=self.tls.context)
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

    async def _accept(self, reader, writer, *, implicit: bool) -> None:
        peer = (writer.get_extra_info("peername") or ("", 0))[0]
        if not self.registry.connect(peer):
            writer.write(replies.untagged(f"BYE {replies.BYE_TOO_MANY}"))
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()
            return
        env = Env(self.config, self.directory, self.limiter, self.registry, peer,
                  tls_available=self.tls.context is not None, tls_active=implicit)
        conn = _Connection(self, reader, writer, Session(env))
        conn.task = asyncio.current_task()
        self._connections.add(conn)
        try:
            await conn.run()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except RuntimeError:
            if not writer.is_closing():    # uvloop: a write after the peer reset; anything else is a bug
                raise
        finally:
            self._connections.discard(conn)
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
        self.parser = CommandParser(PRE_AUTH_LITERAL, cfg.max_line)
        self.timeout, self.poll = cfg.idle_timeout, cfg.idle_poll
        self.task: asyncio.Task | None = None
        self.closing = False
        self._read: asyncio.Task | None = None

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

    async def run(self) -> None:
        self.writer.write(self.session.greeting())
        await self.writer.drain()
        while not self.closing:
            data = await self._receive()
            if not data:
                return
            self.parser.receive_data(data)
            if not await self._drain_events():
                return

    async def _receive(self) -> bytes:
        """Next bytes from the client; polls the mailbox while IDLE; b"" on EOF or timeout."""
        waited = 0.0
        while not self.closing:
            if self._read is None:
                self._read = asyncio.ensure_future(self.reader.read(READ_SIZE))
            idling = self.session.idle_tag is not None
            step = self.poll if idling else self.timeout
            done, _ = await asyncio.wait({self._read}, timeout=step)
            if done:
                task, self._read = self._read, None
                return task.result() if not task.cancelled() else b""
            waited += step
            if waited >= self.timeout:
                self.writer.write(replies.untagged(f"BYE {replies.BYE_TIMEOUT}"))
                return b""
            if idling:
                news = await self._call(self.session.idle_poll)
                if news:
                    self.writer.write(news)
                    await self.writer.drain()
        return b""

    async def _drain_events(self) -> bool:
        """Handle every complete event in the buffer; False when the connection must end."""
        for _ in range(10_000):
            event = self.parser.next_event()
            if event is NEED_DATA:
                return True
            if event is CONTINUE:
                self.writer.write(replies.continuation())
                await self.writer.drain()
                continue
            if _heavy(event):
                outcome = await self._call(self.session.handle, event)
            else:
                outcome = self.session.handle(event)
            if outcome.delay:
                await asyncio.sleep(outcome.delay)
            self.writer.write(outcome.data)
            await self.writer.drain()
            if outcome.stream is not None:
                await self._stream(outcome)
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
                await self.writer.drain()
        except (ConnectionError, OSError):
            raise
        except Exception:   # a bug half-way: finish the command without leaking its text
            log.exception("imap: streamed reply failed for %s", self.session.user)
            self.writer.write(replies.tagged(outcome.tag, "NO", replies.NO_SERVER))

    async def _starttls(self) -> None:
        self.parser = CommandParser(PRE_AUTH_LITERAL, self.parser.max_line)  # drop pipelined plaintext
        await self.writer.start_tls(self.service.tls.context)
        self.session.env.tls_active = True
