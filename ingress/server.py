"""The SMTP ingress: a thin aiosmtpd shell around the pure policy.

Owns: the listeners, the aiosmtpd handler hooks, and the accept step:
spool write (fsync) + confirmed publish, both off the event loop in a thread
pool, and only then ``250 2.0.0 Ok: queued as <ID>``. If either fails the
reply is 4xx and nothing stays half-accepted.

Must not: parse addresses beyond what policy needs, or run filters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

from core.errors import BrokerUnavailable, SpoolFull
from core.ids import new_queue_id
from ingress import policy, replies
from mailstore.directory import Directory
from ops import metrics
from ops.config import Config
from spool.fs import FilesystemSpool
from spool.model import Entry, Recipient

log = logging.getLogger("mailpipe.ingress")


@dataclass
class IngressContext:
    config: Config
    directory: Directory
    spool: FilesystemSpool
    publish: object                        # (stage, queue_id) -> None, raises BrokerUnavailable
    executor: ThreadPoolExecutor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.config.ingress.publish_threads,
                                               thread_name_prefix="ingress-accept")
        self.trusted = policy.parse_networks(self.config.ingress.trusted_networks)


def peer_ip(session: Session) -> str | None:
    peer = session.peer
    return peer[0] if isinstance(peer, tuple) and peer else None


class Handler:
    """aiosmtpd hooks. One instance serves every connection of a listener."""

    def __init__(self, ctx: IngressContext, *, protocol: str = "ESMTP") -> None:
        self.ctx = ctx
        self.protocol = protocol

    def may_relay(self, session: Session) -> bool:
        return bool(session.authenticated) or policy.in_networks(peer_ip(session), self.ctx.trusted)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.ctx.config.ingress.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        reply = policy.check_recipient(address, self.ctx.directory.snapshot(),
                                       may_relay=self.may_relay(session))
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        else:
            log.info("reject: RCPT from %s[%s]: %s; from=<%s> to=<%s>", session.host_name,
                     peer_ip(session), reply, envelope.mail_from, address)
            metrics.ingress_rejected(reply)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not envelope.rcpt_tos:
            return replies.NO_VALID_RECIPIENTS
        queue_id = new_queue_id()
        entry = self.make_entry(queue_id, session, envelope)
        received = policy.received_header(
            helo=session.host_name, peer_ip=peer_ip(session), hostname=self.ctx.config.hostname,
            queue_id=queue_id, protocol=self.protocol_name(session),
            recipient=envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None,
            auth_user=entry.auth_user)
        chunks = [received, envelope.original_content or b""]
        entry.size = sum(len(c) for c in chunks)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.ctx.executor, self.accept, entry, chunks)
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

    def protocol_name(self, session: Session) -> str:
        name = "ESMTP" if session.extended_smtp else "SMTP"
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

    def accept(self, entry: Entry, chunks: list[bytes]) -> None:
        """Spool durably, then publish with confirmation; undo the spool write if publish fails."""
        self.ctx.spool.create(entry, chunks)
        try:
            self.ctx.publish("smtp_in", entry.id)
        except BrokerUnavailable:
            self.ctx.spool.delete(entry.id)
            raise


def smtp_factory(ctx: IngressContext, handler: Handler, **kwargs):
    config = ctx.config

    def factory() -> SMTP:
        metrics.ingress_connection()
        return SMTP(handler, hostname=config.hostname, ident="mailpipe ESMTP",
                    data_size_limit=config.ingress.max_message_size, enable_SMTPUTF8=True,
                    decode_data=False, timeout=config.ingress.command_timeout, **kwargs)
    return factory


async def start_ingress(ctx: IngressContext) -> list[asyncio.Server]:
    """Bind the MX listener (submission listeners come with the TLS/AUTH work)."""
    loop = asyncio.get_running_loop()
    cfg = ctx.config.ingress
    server = await loop.create_server(smtp_factory(ctx, Handler(ctx)), cfg.listen, cfg.smtp_port,
                                      reuse_address=True)
    log.info("ingress: SMTP listening on %s:%d", cfg.listen, cfg.smtp_port)
    return [server]
