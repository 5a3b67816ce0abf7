"""Fixtures for POP3 tests: a real Pop3Service on 127.0.0.1 (ephemeral ports) in a loop thread."""

from __future__ import annotations

import asyncio
import atexit
import poplib
import shutil
import sqlite3
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from mailpipe.access.pop3.server import Pop3Service
from mailpipe.core.clock import FakeClock
from mailpipe.core.tls import TlsContexts
from mailpipe.mailstore.directory import AccountAdmin, open_directory
from mailpipe.mailstore.maildir import deliver, maildir_path
from mailpipe.core.config import Config

USER = "alice@example.test"
PASSWORD = "correct horse"
OTHER = "bob@example.test"


@dataclass
class Running:
    service: Pop3Service
    loop: asyncio.AbstractEventLoop
    config: Config
    directory: AccountAdmin
    clock: FakeClock
    client_context: ssl.SSLContext | None
    delays: list[float] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.service.addresses[0][1]

    @property
    def tls_port(self) -> int:
        return self.service.addresses[1][1]

    def connect(self, timeout: float = 10.0) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", self.port, timeout=timeout)

    def connect_tls(self, timeout: float = 10.0) -> poplib.POP3_SSL:
        return poplib.POP3_SSL("127.0.0.1", self.tls_port, timeout=timeout, context=self.client_context)

    def login(self, user: str = USER, password: str = PASSWORD) -> poplib.POP3:
        client = self.connect()
        client.user(user)
        client.pass_(password)
        return client

    def maildir(self, user: str = USER) -> Path:
        return maildir_path(self.config.data_dir, user)

    def deliver(self, data: bytes, base: str, user: str = USER) -> None:
        assert deliver(self.maildir(user), [data], base=base)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)


_TEMPLATE: dict[str, Path] = {}


def _accounts(tmp: Path) -> AccountAdmin:
    """A directory with the two test users; argon2 hashing is paid once per test run."""
    template = _TEMPLATE.get("db")
    if template is None:
        folder = tempfile.mkdtemp(prefix="pop3-accounts-")
        atexit.register(shutil.rmtree, folder, True)          # leave nothing behind in /tmp
        template = Path(folder) / "db"
        seed = open_directory(f"sqlite:///{template}")
        seed.add_domain("example.test")
        seed.add_user(USER, PASSWORD)
        seed.add_user(OTHER, "bob password")
        seed.close()
        _TEMPLATE["db"] = template
    with sqlite3.connect(template) as src, sqlite3.connect(tmp / "db") as dst:
        src.backup(dst)
    return open_directory(f"sqlite:///{tmp}/db")


def start_service(tmp: Path, *, tls: bool = False, pop3: dict | None = None,
                  auth: dict | None = None) -> Running:
    directory = _accounts(tmp)
    contexts, client_ctx = _tls(tmp) if tls else (TlsContexts(None, None), None)
    config = Config(data_dir=tmp, pop3={"port": 0, "tls_port": 0, **(pop3 or {})}, auth=auth or {})
    clock = FakeClock()
    loop = asyncio.new_event_loop()
    running = Running(None, loop, config, directory, clock, client_ctx)  # type: ignore[arg-type]

    async def no_sleep(seconds: float) -> None:
        running.delays.append(seconds)

    running.service = Pop3Service(config, directory, contexts, clock, delay=no_sleep)
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(running.service.start(), loop).result(10)
    return running


def _tls(tmp: Path) -> tuple[TlsContexts, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    return TlsContexts(tmp / "server.pem", tmp / "server.pem"), client


@pytest.fixture
def server(tmp_path: Path):
    running = start_service(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def tls_server(tmp_path: Path):
    running = start_service(tmp_path, tls=True)
    yield running
    running.stop()
