"""The SMTP ingress: listeners, and the handler that answers the protocol core's requests.

Owns: binding the MX (STARTTLS offered when ``[tls]`` is set), submission
(STARTTLS, AUTH required before MAIL) and SMTPS (implicit TLS, RFC 8314)
listeners; connection admission; and the decisions that need the outside
world: AUTH against the directory with the process's login limiter (per address and account), sender
ownership after AUTH, recipient/relay policy, and the accept step: spool
write (fsync) + confirmed publish, both off the event loop and grouped with
the messages accepted at the same moment (``ingress.committer``), and only then
``250 2.0.0 Ok: queued as <ID>``. If either fails the reply is
4xx and nothing stays half-accepted.

Why not aiosmtpd: its read loop mixes framing, limits, TLS policy and
dispatch (by ``smtp_*`` method names), several of its replies lack enhanced
status codes, and its DATA reader passes bare LF through to the queue (to be
split by the next hop). The protocol here is a sans-I/O core
(``ingress.protocol``) behind a small asyncio shell (``ingress.connection``).

Must not: parse SMTP (the core does), or run the content filters (anti-virus,
anti-spam, body rules: the workers do); the operator's envelope-only rules
are the one filter it applies, during the dialogue.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from mailpipe.core import authlimit
from mailpipe.core.authlimit import LoginLimiter
from mailpipe.core.clock import Clock, SystemClock
from mailpipe.core.errors import BrokerUnavailable, ConfigError, SpoolFull
from mailpipe.core.ids import new_queue_id
from mailpipe.core.tls import TlsContexts, is_loopback
from mailpipe.ingress import policy, replies
from mailpipe.ingress.committer import Committer
from mailpipe.ingress.connection import Connection, ListenerSpec
from mailpipe.ingress.flow import FlowGate
from mailpipe.ingress.limits import ConnectionLimits, PassedClients
from mailpipe.ingress.protocol import AuthRequest, Envelope, MailRequest, RcptRequest, Session, Settings
from mailpipe.mailstore.directory import Directory
from mailpipe.core import metrics
from mailpipe.filters.rules import from_config as rules_from_config
from mailpipe.filters.verdict import Action
from mailpipe.core.config import Config
from mailpipe.spool.interface import Spool
from mailpipe.spool.model import Entry, Recipient

log = logging.getLogger("mailpipe.ingress")


Publish = Callable[[str, str], None]
PublishMany = Callable[[str, list[str]], None]


@dataclass
class IngressContext:
    config: Config
    directory: Directory
    spool: Spool
    publish: Publish                       #: (stage, queue_id) -> None, raises BrokerUnavailable
    publish_many: PublishMany | None = None  #: (stage, [queue_id, ...]) -> None; default: publish each
    executor: ThreadPoolExecutor = field(default=None)  # type: ignore[assignment]
    tls: TlsContexts | None = None         #: the shared server TLS context (None: no TLS listeners)
    limiter: LoginLimiter = field(default=None)  # type: ignore[assignment]  #: shared by every protocol
    bound: dict[str, int] = field(default_factory=dict)   #: listener name -> bound port
    clock: Clock = field(default_factory=SystemClock)
    auth_executor: ThreadPoolExecutor = field(default=None)  # type: ignore[assignment]
    backlog: Callable[[], int | None] | None = None   #: () -> ready messages on smtp_in, or None; None: no flow control

    def __post_init__(self) -> None:
        cfg = self.config.ingress
        if self.executor is None:
            self.executor = ThreadPoolExecutor(cfg.publish_threads, thread_name_prefix="ingress-commit")
        self.committer = Committer(self.spool, self._publish_many, self.executor,
                                   threads=cfg.publish_threads, max_batch=cfg.publish_batch)
        if self.auth_executor is None:       # password hashing must never starve the accept path
            self.auth_executor = ThreadPoolExecutor(2, thread_name_prefix="ingress-auth")
        if self.limiter is None:
            self.limiter = authlimit.from_config(self.config.auth, self.clock)
        self.trusted = policy.parse_networks(self.config.ingress.trusted_networks)
        self.connections = ConnectionLimits(self.config.ingress.max_connections,
                                            self.config.ingress.max_connections_per_ip)
        self.passed = PassedClients(self.config.ingress.greet_pass_ttl, self.clock)
        self.rules = rules_from_config(self.config.rules)     # SMTP-time operator rules (or None)
        self.flow = FlowGate(self.backlog or (lambda: None), limit=cfg.in_flow_backlog, delay=cfg.in_flow_delay)

    def _publish_many(self, stage: str, queue_ids: list[str]) -> None:
        if self.publish_many is not None:
            self.publish_many(stage, queue_ids)
            return
        for queue_id in queue_ids:
            self.publish(stage, queue_id)

    def reload(self) -> None:
        """SIGHUP: new TLS certificates and the rules file, now."""
        if self.tls is not None:
            self.tls.reload()
        if self.rules is not None:
            self.rules.reload()


def peer_ip(session: Session) -> str | None:
    peer = session.peer
    return peer[0] if isinstance(peer, tuple) and peer else None


class Handler:
    """Answers the core's requests. One instance serves every connection of every listener."""

    def __init__(self, ctx: IngressContext, *, protocol: str = "ESMTP") -> None:
        self.ctx = ctx
        self.protocol = protocol

    def may_relay(self, session: Session) -> bool:
        return bool(session.authenticated) or policy.in_networks(peer_ip(session), self.ctx.trusted)

    async def auth(self, session: Session, request: AuthRequest) -> tuple[str, str | None]:
        """AUTH PLAIN/LOGIN: (reply, canonical address or None). The password is never logged."""
        ip = peer_ip(session) or "unknown"
        ticket = self.ctx.limiter.reserve(ip, request.username)
        if ticket is None:
            log.warning("auth: client %s locked out after repeated failures (user=%s)", ip,
                        policy.printable(request.username))
            return replies.AUTH_LOCKED, None
        loop = asyncio.get_running_loop()
        try:
            user = await loop.run_in_executor(self.ctx.auth_executor, self.ctx.directory.authenticate,
                                              request.username, request.password)
        except BaseException:
            self.ctx.limiter.release(ticket)
            raise
        if user:
            self.ctx.limiter.success(ticket)
            log.info("auth: client %s authenticated as %s", ip, user)
            return replies.AUTH_OK, user
        delay = min(self.ctx.limiter.failure(ticket), self.ctx.config.auth.failure_delay_cap)
        log.warning("auth: failed for user=%s from client %s", policy.printable(request.username), ip)
        await asyncio.sleep(delay)
        return replies.AUTH_FAILED, None

    def policy_reply(self, session: Session, sender: str, recipient: str | None) -> str | None:
        """Operator rules that need only the envelope: a 5xx/4xx reply now, or None to go on."""
        rules = self.ctx.rules
        if rules is None:
            return None
        rules.reload_if_changed()
        verdict = rules.check_envelope(peer_ip(session), session.host_name, sender, recipient)
        if verdict is None:
            return None
        reply = replies.POLICY_REJECT if verdict.action == Action.REJECT else replies.POLICY_TEMPFAIL
        log.info("reject: %s from %s[%s]: %s (rule %s: %s); from=<%s>%s", "RCPT" if recipient else "MAIL",
                 session.host_name, peer_ip(session), reply, ",".join(verdict.rules), verdict.reason,
                 policy.printable(sender), f" to=<{policy.printable(recipient)}>" if recipient else "")
        metrics.ingress_rejected(reply)
        return reply

    async def mail(self, session: Session, request: MailRequest) -> str:
        """After AUTH, MAIL FROM must be one of the user's own addresses or aliases. While
        delivery is behind, a new message first waits (``ingress.flow``)."""
        await self.ctx.flow.admit()
        refused = self.policy_reply(session, request.address, None)
        if refused:
            return refused
        if session.authenticated:
            if not self.ctx.directory.owns_sender(str(session.auth_data), request.address):
                log.info("reject: MAIL from %s: <%s> not owned by %s", peer_ip(session),
                         policy.printable(request.address), session.auth_data)
                metrics.ingress_rejected(replies.SENDER_NOT_OWNED)
                return replies.SENDER_NOT_OWNED.format(address=policy.printable(request.address),
                                                       user=session.auth_data)
        return replies.MAIL_OK

    async def rcpt(self, session: Session, envelope: Envelope, request: RcptRequest) -> str:
        directory = self.ctx.directory
        address = request.address
        if address == "postmaster":
            address = policy.postmaster_address(directory, self.ctx.config.hostname)
        reply = policy.check_recipient(address, directory, may_relay=self.may_relay(session))
        if reply.startswith("250"):
            reply = self.policy_reply(session, envelope.mail_from or "", address) or reply
        else:
            log.info("reject: RCPT from %s[%s]: %s; from=<%s> to=<%s>", session.host_name,
                     peer_ip(session), reply, envelope.mail_from, policy.printable(address))
            metrics.ingress_rejected(reply)
        return reply

    async def message(self, session: Session, envelope: Envelope) -> str:
        if not envelope.rcpt_tos:
            return replies.NO_VALID_RECIPIENTS
        queue_id = new_queue_id()
        entry = self.make_entry(queue_id, session, envelope)
        received = policy.received_header(
            helo=session.host_name, peer_ip=peer_ip(session), hostname=self.ctx.config.hostname,
            queue_id=queue_id, protocol=self.protocol_name(session, envelope),
            recipient=envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None,
            auth_user=entry.auth_user)
        chunks = [received, envelope.original_content or b""]
        entry.size = sum(len(c) for c in chunks)
        try:
            await self.ctx.committer.commit(entry, chunks)
        except BrokerUnavailable as exc:
            log.error("%s: not accepted: %s", queue_id, exc)
            metrics.ingress_rejected(replies.BROKER_DOWN)
            return replies.BROKER_DOWN
        except SpoolFull as exc:
            log.error("%s: not accepted: %s", queue_id, exc)
            metrics.ingress_rejected(replies.SPOOL_FULL)
            return replies.SPOOL_FULL
        log.info("%s: client=%s[%s], from=<%s>, size=%d, nrcpt=%d%s", queue_id, session.host_name,
                 peer_ip(session), envelope.mail_from, entry.size, len(envelope.rcpt_tos),
                 f", sasl_username={entry.auth_user}" if entry.auth_user else "")
        metrics.ingress_accepted()
        return replies.QUEUED.format(queue_id=queue_id)

    def protocol_name(self, session: Session, envelope: Envelope | None = None) -> str:
        """The Received ``with`` keyword (RFC 3848, RFC 6531 3.7.3: UTF8SMTP[S][A])."""
        name = "ESMTP" if session.extended_smtp else "SMTP"
        if envelope is not None and envelope.smtputf8:
            name = "UTF8SMTP"
        if getattr(session, "ssl", None):
            name += "S"
        if session.authenticated:
            name += "A"
        return name

    def make_entry(self, queue_id: str, session: Session, envelope: Envelope) -> Entry:
        auth_user = session.auth_data if session.authenticated and isinstance(session.auth_data, str) else None
        entry = Entry(id=queue_id, sender=envelope.mail_from or "",
                      recipients=[Recipient(address=a) for a in envelope.rcpt_tos], size=0,
                      received_at=time.time(), client_ip=peer_ip(session), helo=session.host_name,
                      auth_user=auth_user)
        entry.record(entry.received_at, "ingress", "received",
                     f"client={session.host_name}[{peer_ip(session)}]"
                     + (f", auth={auth_user}" if auth_user else ""))
        return entry


def settings_for(ctx: IngressContext, spec: ListenerSpec, ip: str | None) -> Settings:
    cfg = ctx.config.ingress
    return Settings(
        hostname=ctx.config.hostname, max_size=cfg.max_message_size, max_header_size=cfg.max_header_size,
        max_recipients=cfg.max_recipients, max_line=cfg.max_line_length, max_errors=cfg.max_errors,
        max_messages=cfg.max_messages_per_connection,
        tls_available=ctx.tls is not None and ctx.tls.context is not None and not spec.implicit_tls,
        plaintext_auth=ctx.config.auth.plaintext_on_loopback and is_loopback(ip),
        auth_required=spec.auth_required)


def connection_handler(ctx: IngressContext, handler: Handler, spec: ListenerSpec):
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ip = peer[0] if peer else "unknown"
        refused = ctx.connections.acquire(ip)
        metrics.ingress_connection() if refused is None else metrics.ingress_rejected(refused)
        try:
            if refused is not None:
                log.warning("refused connection from %s: %s", ip, refused)
                writer.write(refused.encode() + b"\r\n")
            else:
                await Connection(ctx, handler, spec, settings_for(ctx, spec, ip), reader, writer).run()
        except (ConnectionError, OSError) as exc:
            log.debug("connection from %s ended: %s", ip, type(exc).__name__)
        finally:
            if refused is None:
                ctx.connections.release(ip)
            await _close(writer)
    return serve


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5.0)
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass


async def start_ingress(ctx: IngressContext, tls: TlsContexts | None = None,
                        reuse_port: bool = False) -> list[asyncio.Server]:
    """Bind MX always; submission (STARTTLS + AUTH) and SMTPS (implicit TLS) when TLS is configured.

    ``reuse_port``: several ingress processes bind the same ports (SO_REUSEPORT) and the
    kernel spreads connections over them.
    """
    if tls is not None:
        ctx.tls = tls
    elif ctx.tls is None and ctx.config.tls.cert and ctx.config.tls.key:
        ctx.tls = TlsContexts(ctx.config.tls.cert, ctx.config.tls.key)
    cfg = ctx.config.ingress
    if ctx.backlog is not None and cfg.in_flow_delay > 0:
        ctx.flow.start(asyncio.get_running_loop())
    handler = Handler(ctx)
    listeners: list[tuple[ListenerSpec, int, ssl.SSLContext | None]] = [
        (ListenerSpec("smtp", greet_pause=cfg.greet_pause), cfg.smtp_port, None)]
    if ctx.tls is not None and ctx.tls.context is not None:
        listeners.append((ListenerSpec("submission", auth_required=True), cfg.submission_port, None))
        listeners.append((ListenerSpec("smtps", implicit_tls=True, auth_required=True), cfg.smtps_port,
                          ctx.tls.context))
    servers: list[asyncio.Server] = []
    for spec, port, context in listeners:
        try:
            server = await _listen(ctx, handler, spec, port, context, reuse_port)
        except OSError as exc:
            for started in servers:
                started.close()
            raise ConfigError(f"ingress: cannot listen on {cfg.listen}:{port} ({spec.name}): "
                              f"{exc.strerror or exc}") from None
        ctx.bound[spec.name] = server.sockets[0].getsockname()[1]
        log.info("ingress: %s listening on %s:%d", spec.name, cfg.listen, ctx.bound[spec.name])
        servers.append(server)
    return servers


async def _listen(ctx: IngressContext, handler: Handler, spec: ListenerSpec, port: int,
                  context: ssl.SSLContext | None,
                  reuse_port: bool) -> asyncio.Server:
    cfg = ctx.config.ingress
    return await asyncio.start_server(connection_handler(ctx, handler, spec), cfg.listen, port,
                                      ssl=context, reuse_address=True, reuse_port=reuse_port or None,
                                      limit=READ_LIMIT,
                                      ssl_handshake_timeout=cfg.tls_handshake_timeout if context else None)


READ_LIMIT = 256 * 1024
