"""Fixtures: the real ingress listeners (port 0) on a loop in a thread, trustme certificates, accounts.

``IngressServer`` builds exactly what ``mailpipe serve`` builds for ingress
(Config, Directory, FilesystemSpool, TlsContexts, start_ingress) and records
every publish as (stage, queue id), so tests can use blocking smtplib clients.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import threading
from pathlib import Path

import pytest
import trustme
from argon2 import PasswordHasher

from mailpipe.core.tls import TlsContexts
from mailpipe.ingress.server import IngressContext, start_ingress
from mailpipe.mailstore.directory import AccountAdmin, open_directory
from mailpipe.core.config import Config
from mailpipe.spool.fs import FilesystemSpool

HOST = "127.0.0.1"
HOSTNAME = "mx.example.test"


class IngressServer:
    def __init__(self, tmp: Path, cert: tuple[Path, Path] | None, **overrides) -> None:
        ingress = {"smtp_port": 0, "submission_port": 0, "smtps_port": 0, "greet_pause": 0.0,
                   **overrides.pop("ingress", {})}
        auth = {"failure_delay_cap": 0.0, "plaintext_on_loopback": False, **overrides.pop("auth", {})}
        tls = {}
        if cert:                                   # a private copy: tests may replace it (reload)
            (tmp / "tls").mkdir(parents=True, exist_ok=True)
            tls = {"cert": shutil.copy(cert[0], tmp / "tls"), "key": shutil.copy(cert[1], tmp / "tls")}
        self.config = Config(data_dir=tmp / "data", hostname=HOSTNAME, ingress=ingress, auth=auth,
                             tls=tls, **overrides)
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        # a cheap hasher: these tests are about SMTP, not argon2 cost
        self.directory = open_directory(self.config.db_url, hasher=PasswordHasher(time_cost=1, memory_cost=1024))
        self.spool = FilesystemSpool(self.config.data_dir / "spool")
        self.published: list[tuple[str, str]] = []
        self.ctx = IngressContext(config=self.config, directory=self.directory, spool=self.spool,
                                  publish=lambda stage, qid: self.published.append((stage, qid)))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[asyncio.AbstractServer] = []

    def start(self) -> "IngressServer":
        self.thread.start()
        tls = TlsContexts(self.config.tls.cert, self.config.tls.key) if self.config.tls.cert else None
        self.servers = self.call(start_ingress(self.ctx, tls))
        return self

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def port(self, name: str = "smtp") -> int:
        return self.ctx.bound[name]

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.ctx.executor.shutdown(wait=True)
        self.ctx.auth_executor.shutdown(wait=True)

    def queued(self) -> list[str]:
        return [qid for stage, qid in self.published if stage == "smtp_in"]


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def cert_files(ca, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    server_cert = ca.issue_cert(HOSTNAME, "localhost", HOST)
    cert, key = folder / "server.crt", folder / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(cert)
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(cert, append=True)
    server_cert.private_key_pem.write_to_path(key)
    return cert, key


@pytest.fixture
def client_tls(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def add_accounts(directory: AccountAdmin) -> None:
    directory.add_domain("example.test")
    directory.add_user("alice@example.test", "alice-pw")
    directory.add_user("bob@example.test", "bob-pw")
    directory.add_alias("sales@example.test", "alice@example.test")


@pytest.fixture
def make_server(tmp_path, cert_files):
    started: list[IngressServer] = []

    def make(*, tls: bool = True, **overrides) -> IngressServer:
        server = IngressServer(tmp_path / f"s{len(started)}", cert_files if tls else None, **overrides)
        add_accounts(server.directory)
        started.append(server.start())
        return server
    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server) -> IngressServer:
    return make_server()
