"""The POP3 service: listeners for POP3 with STLS and for implicit-TLS POP3S.

Owns: binding ``[pop3] listen``:``port`` and, only when ``[tls]`` gives a
context, ``listen``:``tls_port`` (RFC 8314); admission (at most
``[pop3] max_connections``, and none while the process is short of file
descriptors, ``core.descriptors``: both refused at greeting time with
``-ERR [SYS/TEMP]``); the login limiter (the process's, shared with SMTP and
IMAP); stopping cleanly
(open sessions are cancelled, which deletes nothing).

Must not: parse POP3 (``session``) or touch the Maildir (``maildrop``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from mailpipe.access.pop3 import replies as R
from mailpipe.access.pop3.connection import Connection, Shared
from mailpipe.core import authlimit
from mailpipe.core.authlimit import LoginLimiter
from mailpipe.core.clock import Clock
from mailpipe.core.descriptors import DescriptorReserve
from mailpipe.core.tls import TlsContexts
from mailpipe.mailstore.directory import Directory
from mailpipe.core.config import Config

log = logging.getLogger("mailpipe.pop3")

TLS_HANDSHAKE_TIMEOUT = 30.0
SHORTAGE_LOG_EVERY = 60.0   #: seconds between log lines about refusals for want of descriptors


class Pop3Service:
    def __init__(self, config: Config, directory: Directory, tls: TlsContexts,
                 clock: Clock | None = None, *,
                 delay: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 limiter: LoginLimiter | None = None) -> None:
        """`delay` waits before a failed-login reply (tests pass one that does not sleep);
        `limiter` is the process's login limiter, shared with SMTP and IMAP (default: its own)."""
        self.config = config
        self.tls = tls
        auth = config.auth
        self.shared = Shared(
            directory=directory,
            limiter=limiter or authlimit.from_config(auth, clock),
            data_dir=config.data_dir, tls_context=tls.context,
            plaintext_on_loopback=auth.plaintext_on_loopback,
            idle_timeout=config.pop3.idle_timeout, max_line=config.pop3.max_line,
            max_errors=config.pop3.max_errors, delay=delay, login_timeout=config.pop3.login_timeout)
        self.reserve = DescriptorReserve()
        self._shortage_logged = float("-inf")
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task] = set()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [tuple(sock.getsockname()[:2]) for server in self._servers for sock in server.sockets]

    async def start(self) -> None:
        cfg = self.config.pop3
        self._servers.append(await asyncio.start_server(
            self._plain, cfg.listen, cfg.port, reuse_address=True))
        if self.tls.context is not None:
            self._servers.append(await asyncio.start_server(
                self._implicit_tls, cfg.listen, cfg.tls_port, ssl=self.tls.context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT, reuse_address=True))
        log.info("pop3: listening on %s", ", ".join(f"{h}:{p}" for h, p in self.addresses))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10.0)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def _admit(self) -> bool:
        if len(self._tasks) >= self.config.pop3.max_connections:
            return False
        if self.reserve.admit():
            return True
        now = asyncio.get_running_loop().time()
        if now - self._shortage_logged >= SHORTAGE_LOG_EVERY:
            self._shortage_logged = now
            log.warning("pop3: refusing connections: few file descriptors left for the other servers")
        return False

    async def _plain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, implicit_tls=False)

    async def _implicit_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, implicit_tls=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     *, implicit_tls: bool) -> None:
        task = asyncio.current_task()
        if not self._admit():
            try:
                writer.write(R.TOO_MANY_CONNECTIONS.line())
                writer.close()
            except RuntimeError:      # uvloop: the client is already gone
                pass
            return
        assert task is not None
        self._tasks.add(task)
        try:
            await Connection(self.shared, reader, writer, implicit_tls=implicit_tls).run()
        except asyncio.CancelledError:
            pass                # stop(): the connection already cleaned up; nothing was deleted
        finally:
            self._tasks.discard(task)
