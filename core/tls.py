"""Server TLS contexts from ``[tls]``: TLS 1.2+ only, a modern cipher list, reload on SIGHUP.

Every listener (SMTP STARTTLS/SMTPS, IMAP, IMAPS, POP3, POP3S) takes its
context from one ``TlsContexts`` object, so a certificate reload reaches all of
them: ``reload()`` loads the new pair into the same ``SSLContext`` objects, which
new handshakes then use.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from pathlib import Path

from mailpipe.core.errors import ConfigError

log = logging.getLogger("mailpipe.tls")

CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    _load(ctx, cert, key)
    return ctx


def _load(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls: cannot load certificate {cert} / key {key}: {exc}") from None


class TlsContexts:
    """The server context shared by all listeners (None when [tls] is not configured)."""

    def __init__(self, cert: Path | None, key: Path | None) -> None:
        self.cert, self.key = cert, key
        self.context = server_context(cert, key) if cert and key else None

    def reload(self) -> None:
        if self.context is None or not (self.cert and self.key):
            return
        try:
            _load(self.context, self.cert, self.key)
            log.info("tls: certificate reloaded from %s", self.cert)
        except ConfigError as exc:
            log.error("%s; keeping the previous certificate", exc)


def is_loopback(peer_ip: str | None) -> bool:
    if not peer_ip:
        return False
    try:
        return ipaddress.ip_address(peer_ip.split("%")[0]).is_loopback
    except ValueError:
        return False
