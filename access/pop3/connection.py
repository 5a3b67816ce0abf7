"""One POP3 connection: the asyncio shell around ``Pop3Session``.

Owns: reading bytes under the timeouts (``idle``: an absolute pre-login
deadline of ``login_timeout`` from connect, then ``idle_timeout`` from the
end of the last complete command; bytes alone extend nothing), framing lines, performing the
session's effects (login in a worker thread, sending messages, STLS, UPDATE)
and releasing the maildrop lock however the connection ends. A dropped
connection, a timeout or an internal error never reaches UPDATE, so it
deletes nothing. Unexpected errors are logged with their traceback and the
client only gets ``-ERR [SYS/TEMP]``.

Must not: decide anything the protocol core decides (replies, states).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from mailpipe.access.pop3 import replies as R
from mailpipe.access.pop3 import wire
from mailpipe.access.pop3.idle import IdleWatchdog
from mailpipe.access.pop3.effects import CheckLogin, Close, Commit, Effect, Send, SendMessage, StartTls
from mailpipe.access.pop3.login import LoginResult, check_login
from mailpipe.access.pop3.maildrop import Maildrop
from mailpipe.access.pop3.parser import LineBuffer, LineTooLong
from mailpipe.access.pop3.session import Pop3Session, SessionPolicy
from mailpipe.access.pop3.states import State
from mailpipe.core.authlimit import LoginLimiter
from mailpipe.core.tls import is_loopback
from mailpipe.mailstore.directory import Directory

log = logging.getLogger("mailpipe.pop3")

READ_SIZE = 64 * 1024
THREAD_READ_OVER = 1024 * 1024     # read messages larger than this in a worker thread
DRAIN_OVER = 256 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Shared:
    """What every connection of one service uses."""

    directory: Directory
    limiter: LoginLimiter
    data_dir: Path
    tls_context: ssl.SSLContext | None
    plaintext_on_loopback: bool
    idle_timeout: float
    max_line: int
    max_errors: int
    delay: Callable[[float], Awaitable[None]]
    login_timeout: float = 60.0       #: absolute seconds from connect to a successful login


class Connection:
    def __init__(self, shared: Shared, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, implicit_tls: bool) -> None:
        self.shared, self.reader, self.writer = shared, reader, writer
        peer = writer.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else ""
        self.buffer = LineBuffer(shared.max_line)
        self.session = Pop3Session(SessionPolicy(
            plaintext_allowed=implicit_tls or self._loopback_plaintext(),
            tls_available=shared.tls_context is not None,
            tls_active=implicit_tls, max_errors=shared.max_errors))
        self.maildrop: Maildrop | None = None

    def _queued(self) -> int:
        transport = self.writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    def _loopback_plaintext(self) -> bool:
        return self.shared.plaintext_on_loopback and is_loopback(self.ip)

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        self.idle = IdleWatchdog(self.shared.idle_timeout, task, self._queued,
                                 until=loop.time() + self.shared.login_timeout)
        try:
            await self._perform(self.session.greeting())
            await self._loop()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            self.session.dropped()
        except Exception as exc:
            if isinstance(exc, RuntimeError) and self.writer.is_closing():
                self.session.dropped()      # uvloop: a write after the peer reset is a drop, not a bug
            else:
                log.exception("pop3: internal error in session from %s", self.ip)
                self._last_words(R.INTERNAL)
        finally:
            await self._finish()

    async def _loop(self) -> None:
        # Bounded: every read either completes lines (counted by the session's
        # max_commands) or grows the buffer to max_line (counted as an error).
        while self.session.state is not State.CLOSED:
            try:
                data = await self.idle.wait(self.reader.read(READ_SIZE))
            except TimeoutError:
                await self._perform(self.session.timeout())
                return
            if not data:
                self.session.dropped()
                return
            self.buffer.feed(data)
            await self._lines()
            if self._queued() > DRAIN_OVER:
                await self.idle.wait(self.writer.drain())

    async def _lines(self) -> None:
        while self.session.state is not State.CLOSED:
            try:
                line = self.buffer.next_line()
            except LineTooLong:
                effects = self.session.line_too_long()
            else:
                if line is None:
                    return
                effects = self.session.handle_line(line)
            self.idle.touch()           # a whole line: a new idle period (bytes alone do not count)
            await self._perform(effects)

    async def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.writer.write(effect.data)
            elif isinstance(effect, CheckLogin):
                await self._login(effect)
            elif isinstance(effect, SendMessage):
                await self._send_message(effect)
            elif isinstance(effect, StartTls):
                await self._start_tls()
            elif isinstance(effect, Commit):
                await self._commit(effect)
            elif isinstance(effect, Close):
                await self.idle.wait(self.writer.drain())
            else:
                raise TypeError(f"unknown effect {effect!r}")

    async def _login(self, effect: CheckLogin) -> None:
        result = await self._check_login_in_thread(effect)
        if result.delay:
            await self.shared.delay(result.delay)
        self.maildrop = result.maildrop
        listing = result.maildrop.listing() if result.maildrop else None
        effects = self.session.login_result(result.outcome, listing)
        if self.session.state is State.TRANSACTION:
            self.idle.until = None      # logged in: from now on only the idle timeout applies
        await self._perform(effects)

    async def _check_login_in_thread(self, effect: CheckLogin) -> LoginResult:
        s = self.shared
        task = asyncio.ensure_future(asyncio.to_thread(
            check_login, s.directory, s.limiter, s.data_dir, effect.user, effect.password, self.ip))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_close_orphan)   # the lock must not outlive the connection
            raise

    async def _send_message(self, effect: SendMessage) -> None:
        assert self.maildrop is not None
        size = self.session.listing.sizes[effect.number - 1]
        if size > THREAD_READ_OVER:
            data = await asyncio.to_thread(self.maildrop.read, effect.number)
        else:
            data = self.maildrop.read(effect.number)
        if data is None:
            await self._perform(self.session.message_gone())
            return
        if effect.top_lines is None:
            body, head = wire.encode_sized(data, size), R.message_follows(size)
        else:
            body, head = wire.top(data, effect.top_lines), R.top_follows()
        if effect.top_lines is None:
            self.maildrop.mark_seen(effect.number)     # before the reply: a client that saw it sees Seen
        self.writer.write(b"".join((head.line(), body, R.MULTILINE_END)))   # one send, not three
        if self.writer.transport.get_write_buffer_size() > DRAIN_OVER:
            await self.idle.wait(self.writer.drain())

    async def _start_tls(self) -> None:
        await self.writer.drain()
        self.buffer.clear()             # RFC 2595: nothing sent before TLS may be used after it
        _discard_buffered(self.reader)
        assert self.shared.tls_context is not None      # STLS is offered only with a context
        await self.writer.start_tls(self.shared.tls_context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        self.session.tls_started(plaintext_allowed=True)

    async def _commit(self, effect: Commit) -> None:
        assert self.maildrop is not None
        complete = await asyncio.to_thread(self.maildrop.commit, effect.deleted)
        await self._perform(self.session.commit_result(complete))

    def _last_words(self, reply: R.Reply) -> None:
        try:
            if not self.writer.is_closing():
                self.writer.write(reply.line())
        except Exception:               # the transport may already be broken
            pass

    async def _finish(self) -> None:
        self.idle.cancel()
        if self.maildrop is not None:
            self.maildrop.close()
            self.maildrop = None
        self.writer.close()
        try:
            async with asyncio.timeout(5.0):
                await self.writer.wait_closed()
        except (Exception, asyncio.CancelledError):   # closing is best effort
            pass


def _discard_buffered(reader: asyncio.StreamReader) -> None:
    """Drop plaintext the stream already buffered (StreamReader has no public API for this)."""
    buffered = getattr(reader, "_buffer", None)
    if isinstance(buffered, bytearray):
        buffered.clear()


def _close_orphan(task: asyncio.Future) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    result: LoginResult = task.result()
    if result.maildrop is not None:
        result.maildrop.close()
