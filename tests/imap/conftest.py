"""A real IMAP server per test on 127.0.0.1:0, in a background event loop, with a real account directory."""

from __future__ import annotations

import asyncio
import imaplib
import threading
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher
import trustme

from mailpipe.access.imap.server import ImapService
from mailpipe.core.clock import FakeClock
from mailpipe.core.tls import TlsContexts
from mailpipe.mailstore.directory import open_directory
from mailpipe.mailstore.maildir import deliver, maildir_path
from mailpipe.core.config import Config

USER = "alice@example.test"
PASSWORD = "pw"
_seq = [0]


def make_message(subject: str = "hello", body: str = "Hi Alice.\r\n", extra: str = "") -> bytes:
    return (f"From: Bob <bob@example.org>\r\nTo: Alice <alice@example.test>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@example.org>\r\n"
            f"{extra}\r\n{body}").encode()


class Server:
    def __init__(self, tmp: Path, tls: bool = False, **imap) -> None:
        self.tmp = tmp
        self.directory = open_directory(f"sqlite:///{tmp}/db", hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        self.directory.add_domain("example.test")
        self.directory.add_user(USER, PASSWORD)
        self.directory.add_user("bob@example.test", "pw2")
        self.ca = trustme.CA()
        cert_files = {}
        if tls:
            cert = self.ca.issue_cert("127.0.0.1", "localhost", common_name="localhost")
            cert.private_key_and_cert_chain_pem.write_to_path(tmp / "cert.pem")
            cert_files = {"cert": str(tmp / "cert.pem"), "key": str(tmp / "cert.pem")}
        settings = {"port": 0, "tls_port": 0, **imap}
        self.config = Config(data_dir=tmp, imap=settings, tls=cert_files)
        self.clock = FakeClock()
        self.tls = TlsContexts(self.config.tls.cert, self.config.tls.key)
        self.service = ImapService(self.config, self.directory, self.tls, self.clock)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.service.start(), self.loop).result(10)
        self.port = self.service.addresses[0][1]
        self.tls_port = self.service.addresses[1][1] if tls else None
        self.root = maildir_path(tmp, USER)

    def deliver(self, data: bytes, folder: str | None = None, user: str = USER) -> str:
        _seq[0] += 1
        base = f"{int(time.time())}.T{_seq[0]:08d}.test"
        assert deliver(maildir_path(self.tmp, user), [data], base=base, folder=folder)
        return base

    def client(self) -> imaplib.IMAP4:
        return imaplib.IMAP4("127.0.0.1", self.port, timeout=10)

    def login(self) -> imaplib.IMAP4:
        client = self.client()
        client.login(USER, PASSWORD)
        return client

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    yield srv
    srv.stop()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    """Poll a condition (bounded in time); return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
