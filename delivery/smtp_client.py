"""SMTP client for the remote relay: one transaction per destination, per-recipient results.

Owns the I/O around ``delivery.smtp_proto``: connecting to each address of each
MX host in order (next host on connection failure, 4xx/5xx greeting, or a TLS
failure where TLS is required), EHLO (HELO fallback), opportunistic STARTTLS
(verified TLS for ``relay.require_tls_domains``), PIPELINING when offered, SIZE
respected, RFC 5321 4.5.3.2 timeouts, and a small pool of idle connections
keyed by destination so that several messages reuse one session (RSET first).

Outcome per recipient: 2xx -> sent, 4xx or no usable host -> deferred, 5xx ->
failed. Once the final "." is sent and the reply is lost the accepted
recipients are deferred (SMTP cannot tell whether the server kept the mail).

Must not: resolve DNS, decide retry times, or send exception text to anyone:
socket and ssl errors become ``SmtpConnectError`` or a deferred result here.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from mailpipe.core import errtext
from mailpipe.core.clock import Clock, SystemClock
from mailpipe.delivery.errors import SmtpConnectError
from mailpipe.delivery.mx import Destination, Host
from mailpipe.delivery.result import NO_RELAY, RecipientResult
from mailpipe.delivery.smtp_proto import (
    NO_CAPABILITIES, Capabilities, Reply, ReplyParser, SmtpProtocolError, classify, dot_stuff,
    mail_command, needs_smtputf8, rcpt_command,
)
from mailpipe.core.config import RelayConfig

log = logging.getLogger("mailpipe.relay.smtp")

DATA_BLOCK = 64 * 1024   #: bytes per send of message data; the data-block timeout applies to each
RSET_TIMEOUT = 10.0      #: seconds for the RSET that checks a reused session (Postfix: smtp_rset_timeout 20s)

__all__ = ["RecipientResult", "DeliveryReport", "ConnectionPool", "deliver", "deliver_report"]


class _Lost(Exception):
    """The session broke; ``after_dot`` says whether the final '.' had been sent."""

    def __init__(self, what: str, after_dot: bool) -> None:
        super().__init__(what)
        self.after_dot = after_dot


class Connection:
    """One SMTP session over a (possibly TLS-wrapped) socket; moves bytes, parses replies."""

    def __init__(self, sock: socket.socket, host: Host, address: str) -> None:
        self.sock, self.host, self.address = sock, host, address
        self.parser = ReplyParser()
        self.caps: Capabilities = NO_CAPABILITIES
        self.tls = False
        self.uses = 0
        self.idle_since = 0.0
        self.reset_pending = False   #: taken from the pool: RSET goes first in the next command group

    @property
    def relay(self) -> str:
        return self.host.relay(self.address)

    def send(self, data: bytes | memoryview, timeout: float) -> None:
        self.sock.settimeout(timeout)
        self.sock.sendall(data)

    def send_data(self, data: bytes, timeout: float) -> None:
        """Send message data in blocks, each within ``timeout`` (RFC 5321 4.5.3.2.5)."""
        view = memoryview(data)
        for start in range(0, len(view), DATA_BLOCK):
            self.send(view[start:start + DATA_BLOCK], timeout)

    def read_reply(self, timeout: float) -> Reply:
        deadline = time.monotonic() + timeout
        while True:
            reply = self.parser.next_reply()
            if reply is not None:
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("reply timeout")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("connection closed by server")
            self.parser.feed(data)

    def command(self, data: bytes, timeout: float) -> Reply:
        self.send(data, timeout)
        return self.read_reply(timeout)

    def close(self, quit: bool = True) -> None:
        try:
            if quit:
                self.command(b"QUIT\r\n", 5.0)
        except (OSError, SmtpProtocolError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# -- TLS -----------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def verified_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate and host name checked (for require_tls_domains)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@functools.lru_cache(maxsize=1)
def opportunistic_context() -> ssl.SSLContext:
    """Encrypt if we can; like most MTAs, do not verify (RFC 7435)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _TlsFallback(Exception):
    """Opportunistic STARTTLS failed: reconnect without it."""


# -- opening a session ---------------------------------------------------
def _connect(host: Host, address: str, cfg: RelayConfig) -> socket.socket:
    relay = host.relay(address)
    try:
        return socket.create_connection((address, host.port), timeout=cfg.connect_timeout)
    except ConnectionRefusedError:
        raise SmtpConnectError(f"connect to {relay}: Connection refused", refused=True) from None
    except socket.timeout:
        raise SmtpConnectError(f"connect to {relay}: Connection timed out", refused=True) from None
    except OSError as exc:
        raise SmtpConnectError(f"connect to {relay}: {say(exc)}", refused=True) from None


def say(exc: BaseException) -> str:
    """A socket, TLS or protocol error as a person would write it (never a class name)."""
    return "malformed reply" if isinstance(exc, SmtpProtocolError) else errtext.say(exc)


def _hello(conn: Connection, hostname: str, cfg: RelayConfig) -> None:
    reply = conn.command(b"EHLO " + hostname.encode("idna") + b"\r\n", cfg.command_timeout)
    if reply.ok:
        conn.caps = Capabilities.from_ehlo(reply)
        return
    reply = conn.command(b"HELO " + hostname.encode("idna") + b"\r\n", cfg.command_timeout)
    if not reply.ok:
        raise SmtpConnectError(f"host {conn.relay} refused HELO: {reply.text}")
    conn.caps = NO_CAPABILITIES


def _starttls(conn: Connection, hostname: str, cfg: RelayConfig, required: bool) -> None:
    reply = conn.command(b"STARTTLS\r\n", cfg.command_timeout)
    if not reply.ok:
        if required:
            raise SmtpConnectError(f"host {conn.relay} refused STARTTLS: {reply.text}", status="4.7.5")
        return
    ctx = verified_context(_ca(cfg)) if required else opportunistic_context()
    try:
        conn.sock.settimeout(cfg.command_timeout)
        conn.sock = ctx.wrap_socket(conn.sock, server_hostname=conn.host.name)
    except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
        if required:
            raise SmtpConnectError(f"TLS with {conn.relay} failed: {say(exc)}", status="4.7.5") from None
        raise _TlsFallback() from None
    conn.tls, conn.parser = True, ReplyParser()
    _hello(conn, hostname, cfg)


def _ca(cfg: RelayConfig) -> str | None:
    return str(cfg.tls_ca_file) if cfg.tls_ca_file else None


def open_session(host: Host, address: str, *, hostname: str, cfg: RelayConfig,
                 tls_required: bool = False, try_tls: bool = True) -> Connection:
    """Connect, read the greeting, EHLO, STARTTLS as policy says. Raises SmtpConnectError."""
    conn = Connection(_connect(host, address, cfg), host, address)
    try:
        greeting = conn.read_reply(cfg.greeting_timeout)
        if not greeting.ok:
            raise SmtpConnectError(f"host {conn.relay} refused to talk to me: {greeting.text}")
        _hello(conn, hostname, cfg)
        if conn.caps.has("STARTTLS") and (try_tls or tls_required):
            _starttls(conn, hostname, cfg, tls_required)
        elif tls_required:
            raise SmtpConnectError(f"TLS is required, but was not offered by host {conn.relay}",
                                   status="4.7.5")
        return conn
    except _TlsFallback:
        conn.close(quit=False)
        return open_session(host, address, hostname=hostname, cfg=cfg, try_tls=False)
    except (OSError, SmtpProtocolError) as exc:
        conn.close(quit=False)
        raise SmtpConnectError(f"lost connection with {conn.relay} while opening the session: "
                               f"{say(exc)}") from None
    except SmtpConnectError:
        conn.close()
        raise


# -- one transaction -----------------------------------------------------
def _envelope(conn: Connection, sender: str, recipients: list[str], message: bytes,
              cfg: RelayConfig) -> tuple[Reply, list[Reply], Reply | None]:
    """MAIL, RCPT..., DATA (pipelined when offered); DATA is only sent when it can succeed."""
    utf8 = needs_smtputf8(sender, *recipients)
    mail = mail_command(sender, len(message), conn.caps, not message.isascii(), utf8)
    rcpts = [rcpt_command(r) for r in recipients]
    t = cfg.command_timeout
    if conn.caps.has("PIPELINING"):
        reset, conn.reset_pending = conn.reset_pending, False
        conn.send((b"RSET\r\n" if reset else b"") + mail + b"".join(rcpts) + b"DATA\r\n", t)
        if reset and not conn.read_reply(min(t, RSET_TIMEOUT)).ok:
            raise SmtpProtocolError("RSET refused on a reused session")
        mail_reply = conn.read_reply(t)
        rcpt_replies = [conn.read_reply(t) for _ in rcpts]
        return mail_reply, rcpt_replies, conn.read_reply(cfg.data_init_timeout)
    mail_reply = conn.command(mail, t)
    if not mail_reply.ok:
        return mail_reply, [], None
    rcpt_replies = [conn.command(c, t) for c in rcpts]
    if not any(r.ok for r in rcpt_replies):
        return mail_reply, rcpt_replies, None
    return mail_reply, rcpt_replies, conn.command(b"DATA\r\n", cfg.data_init_timeout)


def _result(rcpt: str, reply: Reply, relay: str) -> RecipientResult:
    return RecipientResult(rcpt, classify(reply.code), reply.text, relay)  # type: ignore[arg-type]


def _precheck(conn: Connection, sender: str, recipients: list[str], message: bytes) -> str:
    """A permanent refusal decided from the EHLO reply alone (SIZE, SMTPUTF8), or ""."""
    limit = conn.caps.size
    if limit and len(message) > limit:
        return f"5.3.4 message size {len(message)} exceeds the limit of {limit} bytes of {conn.relay}"
    if needs_smtputf8(sender, *recipients) and not conn.caps.has("SMTPUTF8"):
        return f"5.6.7 SMTPUTF8 is required, but was not offered by host {conn.relay}"
    return ""


def transaction(conn: Connection, sender: str, recipients: list[str], message: bytes,
                cfg: RelayConfig) -> list[RecipientResult]:
    """One mail transaction on an open session; raises _Lost if the session breaks."""
    refusal = _precheck(conn, sender, recipients, message)
    if refusal:
        return [RecipientResult(r, "failed", refusal, conn.relay) for r in recipients]
    after_dot = False
    try:
        conn.uses += 1
        mail, rcpt_replies, data = _envelope(conn, sender, recipients, message, cfg)
        if not mail.ok:
            _finish_refused(conn, data, cfg)
            return [_result(r, mail, conn.relay) for r in recipients]
        results = {r: _result(r, rep, conn.relay) for r, rep in zip(recipients, rcpt_replies)}
        accepted = [r for r, rep in zip(recipients, rcpt_replies) if rep.ok]
        if data is None or data.code != 354 or not accepted:
            _finish_refused(conn, data, cfg)
            final = data
        else:
            conn.send_data(dot_stuff(message), cfg.data_block_timeout)
            after_dot = True
            final = conn.read_reply(cfg.data_end_timeout)
        for rcpt in accepted:
            results[rcpt] = _result(rcpt, final, conn.relay) if final else results[rcpt]
        return [results[r] for r in recipients]
    except (OSError, SmtpProtocolError) as exc:
        raise _Lost(say(exc), after_dot) from None


def _finish_refused(conn: Connection, data: Reply | None, cfg: RelayConfig) -> None:
    """Leave the session clean after a refused transaction (RFC 2920 3.1: '.' after a lone 354)."""
    if data is not None and data.code == 354:
        conn.send(b".\r\n", cfg.data_block_timeout)
        conn.read_reply(cfg.data_end_timeout)
    conn.command(b"RSET\r\n", cfg.command_timeout)


# -- connection reuse ----------------------------------------------------
class ConnectionPool:
    """Idle sessions keyed by destination; each is reused after a successful RSET.

    With PIPELINING the RSET goes out in one group with the next MAIL, RCPT and
    DATA (RFC 2920 allows RSET in a group), which saves a round trip per
    message; a session the server has dropped then fails before any data was
    sent, and the message goes over a new session."""

    def __init__(self, cfg: RelayConfig, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self._idle: dict[str, list[Connection]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> Connection | None:
        """A live idle session for ``key`` (stale ones are closed), or None."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None:
                return None
            if self.clock.now() - conn.idle_since <= self.cfg.connection_cache_time:
                if conn.caps.has("PIPELINING"):
                    conn.reset_pending = True
                    return conn
                if _reset(conn, self.cfg):
                    return conn
            conn.close()

    def put(self, key: str, conn: Connection) -> None:
        """Keep ``conn`` for reuse, or close it when caching is off, full, or it has been used enough."""
        if self.cfg.connection_cache_time <= 0 or conn.uses >= self.cfg.connection_reuse_limit:
            conn.close()
            return
        conn.idle_since = self.clock.now()
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.cfg.max_per_destination:
                idle.append(conn)
                return
        conn.close()

    def prune(self) -> None:
        """Close sessions idle for longer than connection_cache_time."""
        now = self.clock.now()
        with self._lock:
            stale = [(k, c) for k, conns in self._idle.items() for c in conns
                     if now - c.idle_since > self.cfg.connection_cache_time]
            for key, conn in stale:
                self._idle[key].remove(conn)
        for _key, conn in stale:
            conn.close()

    def close_all(self) -> None:
        with self._lock:
            conns = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for conn in conns:
            conn.close()


def _reset(conn: Connection, cfg: RelayConfig) -> bool:
    try:
        return conn.command(b"RSET\r\n", min(cfg.command_timeout, RSET_TIMEOUT)).ok
    except (OSError, SmtpProtocolError):
        return False


# -- delivering to a destination -----------------------------------------
@dataclass(frozen=True)
class DeliveryReport:
    results: list[RecipientResult]
    unreachable: bool = False   #: no host accepted a TCP connection (mark the destination down)
    connections: int = 0        #: new sessions opened (reused ones not counted)


def _deferred_all(recipients: list[str], reply: str, relay: str = NO_RELAY) -> list[RecipientResult]:
    return [RecipientResult(r, "deferred", reply, relay) for r in recipients]


def _attempt(conn: Connection, key: str, pool: ConnectionPool | None, sender: str,
             recipients: list[str], message: bytes, cfg: RelayConfig) -> list[RecipientResult] | None:
    """Run the transaction; None means the session broke before '.', so another host may be tried."""
    try:
        results = transaction(conn, sender, recipients, message, cfg)
    except _Lost as lost:
        conn.close(quit=False)
        log.info("lost connection with %s (%s)", conn.relay, lost)
        if not lost.after_dot:
            return None
        reply = f"4.4.2 lost connection with {conn.relay} while receiving the reply to end of data"
        return _deferred_all(recipients, reply, conn.relay)
    if pool is not None and not any(r.reply.startswith("421") for r in results):
        pool.put(key, conn)
    else:
        conn.close()
    return results


def deliver_report(dest: Destination, sender: str, recipients: list[str], message: bytes, *,
                   hostname: str, cfg: RelayConfig, pool: ConnectionPool | None = None) -> DeliveryReport:
    """Deliver one message to every recipient at ``dest`` in one transaction."""
    key = dest.domain
    conn = pool.take(key) if pool is not None else None
    if conn is not None:
        results = _attempt(conn, key, pool, sender, recipients, message, cfg)
        if results is not None:
            return DeliveryReport(results)
    required = dest.domain.lower() in {d.lower() for d in cfg.require_tls_domains}
    last, refused_all, opened = f"4.4.1 no MX host for {dest.domain} could be reached", True, 0
    for host in dest.hosts:
        for address in host.addresses:
            try:
                conn = open_session(host, address, hostname=hostname, cfg=cfg, tls_required=required)
            except SmtpConnectError as exc:
                log.info("%s", exc)
                last, refused_all = f"{exc.status} {exc}", refused_all and exc.refused
                continue
            opened += 1
            refused_all = False
            results = _attempt(conn, key, pool, sender, recipients, message, cfg)
            if results is not None:
                return DeliveryReport(results, False, opened)
            last = f"4.4.2 lost connection with {conn.relay} during the transaction"
    return DeliveryReport(_deferred_all(recipients, last), refused_all, opened)


def deliver(dest: Destination, sender: str, recipients: list[str], message: bytes, *,
            hostname: str, cfg: RelayConfig, pool: ConnectionPool | None = None) -> list[RecipientResult]:
    """Per-recipient results of delivering ``message`` to ``dest`` (see the module docstring)."""
    return deliver_report(dest, sender, recipients, message, hostname=hostname, cfg=cfg, pool=pool).results
