"""Fixtures for relay tests: a real DNS server, scripted aiosmtpd receivers, smtp-sink, raw greeters.

Every server binds a loopback address on a free port. MX hosts live on
different 127.0.0.x addresses with the same port, because the relay uses one
port (``relay.smtp_port``) for every MX host, as in production.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from mailpipe.core.config import DnsConfig, RelayConfig
from tests.relay.dnsserver import TestDnsServer, ZoneResolver

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

ZONE = """
pref.test.      300 IN MX 10 mx1.pref.test.
pref.test.      300 IN MX 20 mx2.pref.test.
mx1.pref.test.  300 IN A 127.0.0.1
mx2.pref.test.  300 IN A 127.0.0.2
fallback.test.  300 IN MX 10 down.fallback.test.
fallback.test.  300 IN MX 20 up.fallback.test.
down.fallback.test. 300 IN A 127.0.0.2
up.fallback.test.   300 IN A 127.0.0.1
greet.test.     300 IN MX 10 busy.greet.test.
greet.test.     300 IN MX 20 ok.greet.test.
busy.greet.test. 300 IN A 127.0.0.3
ok.greet.test.  300 IN A 127.0.0.1
implicit.test.  300 IN A 127.0.0.1
nullmx.test.    300 IN MX 0 .
alias.test.     300 IN CNAME target.test.
target.test.    300 IN MX 10 mx.target.test.
mx.target.test. 300 IN A 127.0.0.1
tls.test.       300 IN MX 10 mx.tls.test.
mx.tls.test.    300 IN A 127.0.0.1
badname.test.   300 IN MX 10 wrong.badname.test.
wrong.badname.test. 300 IN A 127.0.0.1
ok.test.        300 IN MX 10 mx.ok.test.
mx.ok.test.     300 IN A 127.0.0.1
ok2.test.       300 IN MX 10 mx.ok.test.
ttl.test.       60  IN MX 10 mx.ttl.test.
mx.ttl.test.    60  IN A 127.0.0.1
eq.test.        300 IN MX 10 a.eq.test.
eq.test.        300 IN MX 10 b.eq.test.
eq.test.        300 IN MX 30 c.eq.test.
a.eq.test.      300 IN A 127.0.0.1
b.eq.test.      300 IN A 127.0.0.2
c.eq.test.      300 IN A 127.0.0.3
dangling.test.  300 IN MX 10 nowhere.dangling.test.
v6.test.        300 IN MX 10 mx.v6.test.
mx.v6.test.     300 IN A 127.0.0.1
mx.v6.test.     300 IN AAAA ::1
"""


from tests.support import free_port  # noqa: E402,F401  (one port allocator for all tests)


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open")


@pytest.fixture(scope="session")
def dns_server():
    resolver = ZoneResolver(ZONE, servfail={"servfail.test"}, drop={"timeout.test"})
    with TestDnsServer(resolver) as server:
        yield server


@pytest.fixture
def dns_cfg(dns_server) -> DnsConfig:
    return DnsConfig(nameservers=[dns_server.nameserver], timeout=1.0)


# -- aiosmtpd receivers --------------------------------------------------
@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool


@dataclass
class ScriptedHandler:
    """Records messages; replies to RCPT/DATA from scripts."""

    reject_rcpt: dict[str, str] = field(default_factory=dict)   # address -> reply
    data_replies: list[str] = field(default_factory=list)       # consumed in order, then 250
    pipelining: bool = False
    messages: list[Received] = field(default_factory=list)
    data_attempts: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject_rcpt:
            return self.reject_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_attempts += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content, session.ssl is not None))
        return "250 2.0.0 OK queued"


class CountingController(Controller):
    """aiosmtpd Controller that counts the connections it accepts."""

    def __init__(self, handler, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.connections = 0
        self._count_lock = threading.Lock()

    def factory(self):
        with self._count_lock:
            self.connections += 1
        return SMTP(self.handler, **self.SMTP_kwargs)


class Receivers:
    """Start aiosmtpd receivers on one shared port across 127.0.0.x; stop them at teardown."""

    def __init__(self) -> None:
        self.port = free_port()
        self.controllers: list[CountingController] = []

    def start(self, handler: ScriptedHandler, host: str = "127.0.0.1", **kwargs) -> CountingController:
        controller = CountingController(handler, hostname=host, port=self.port, **kwargs)
        controller.start()
        controller.connections = 0   # the Controller's own readiness probe does not count
        self.controllers.append(controller)
        return controller

    def stop(self) -> None:
        for controller in self.controllers:
            controller.stop()


@pytest.fixture
def receivers():
    recv = Receivers()
    yield recv
    recv.stop()


@pytest.fixture
def relay_cfg(receivers) -> RelayConfig:
    return RelayConfig(smtp_port=receivers.port, connect_timeout=2.0, command_timeout=5.0,
                       greeting_timeout=5.0, data_init_timeout=5.0, data_block_timeout=5.0,
                       data_end_timeout=5.0, concurrency_wait=1.0)


# -- TLS -----------------------------------------------------------------
@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.tls.test").configure_cert(ctx)
    return ctx


# -- a raw greeter (4xx greeting) -----------------------------------------
class Greeter:
    """Answers every connection with a fixed greeting and closes; counts connections."""

    def __init__(self, host: str, port: int, greeting: bytes) -> None:
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self.greeting, self.connections = greeting, 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.sendall(self.greeting)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


# -- Postfix smtp-sink ----------------------------------------------------
@pytest.fixture
def smtp_sink():
    if not shutil.which(SMTP_SINK):
        pytest.skip("smtp-sink (Debian package postfix) is not installed")
    port = free_port()
    # smtp-sink drops privileges to nobody: its dump folder must be reachable by nobody,
    # which pytest's tmp_path (under a 0700 folder) is not.
    dump = Path(tempfile.mkdtemp(prefix="mailpipe-sink-"))
    dump.chmod(0o777)
    cmd = [SMTP_SINK, "-u", "nobody", "-d", f"{dump}/%H%M%S.", "-c", f"127.0.0.1:{port}", "100"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port("127.0.0.1", port)
        yield port, dump
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(dump, ignore_errors=True)


class LineServer:
    """A raw SMTP-ish server: 220, then ``answer(line) -> bytes | None`` per line (None = hang up).

    Used for what aiosmtpd will not do on purpose: drop the connection after the
    final '.', or never greet at all (``greeting=None`` holds the socket open).
    """

    def __init__(self, host: str, port: int, answer, greeting: bytes | None = b"220 raw ESMTP\r\n") -> None:
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self.answer, self.greeting = answer, greeting
        self.connections, self.lines, self.chunks = 0, [], []    # chunks: what each recv returned
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        if self.greeting is None:
            self._stop.wait(10)
            return
        conn.sendall(self.greeting)
        buf, deadline = b"", time.monotonic() + 10
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            self.chunks.append(data)
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append(line.rstrip(b"\r"))
                reply = self.answer(line.rstrip(b"\r"))
                if reply is None:
                    return
                if isinstance(reply, tuple):        # (last reply, "close"): answer, then hang up
                    conn.sendall(reply[0])
                    return
                conn.sendall(reply)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=15)
        self.sock.close()


def drop_after_dot(line: bytes) -> bytes | None:
    """Accept the envelope and DATA, then hang up instead of answering the final '.'."""
    verb = line[:4].upper()
    if line == b".":
        return None
    if verb == b"EHLO":
        return b"250-raw\r\n250 8BITMIME\r\n"
    if verb == b"DATA":
        return b"354 go ahead\r\n"
    if verb in (b"MAIL", b"RCPT", b"RSET", b"QUIT"):
        return b"250 2.0.0 ok\r\n"
    return b""      # message content: no reply


def broken_starttls(line: bytes):
    """Offer STARTTLS, agree to it, then hang up mid-handshake; accept everything in plain text."""
    verb = line[:8].upper()
    if verb.startswith(b"EHLO"):
        return b"250-raw\r\n250 STARTTLS\r\n"
    if verb == b"STARTTLS":
        return (b"220 2.0.0 ready\r\n", "close")
    if line == b".":
        return b"250 2.0.0 queued\r\n"
    if verb.startswith(b"DATA"):
        return b"354 go ahead\r\n"
    if verb[:4] in (b"MAIL", b"RCPT", b"RSET", b"QUIT"):
        return b"250 2.0.0 ok\r\n"
    return b""
