"""Decisions the ingress must take during the SMTP dialogue. Pure: no I/O.

Owns: who may relay, whether a recipient exists, the Received header.
Must not: touch sockets, the spool or the broker.

A recipient in a local domain must exist after alias expansion (550 5.1.1).
A recipient in any other domain is relay, allowed only to authenticated
clients and ``trusted_networks`` (else 554 5.7.1). Address tricks that other
MTAs once routed (``%`` hacks, bang paths, source routes, quoted local parts
containing ``@``) are never routed by mailpipe: such an address simply names a
local part that does not exist. In a local domain, a local part containing
``% ! @ : " \\`` is refused as unknown outright. Source routes were already
dropped by the grammar (so ``<@local:user@foreign>`` is plain foreign relay),
trailing dots are a syntax error there, domains compare case-insensitively, and
address literals (``user@[192.0.2.1]``) are never local: they are relay.
"""

from __future__ import annotations

import ipaddress
import time
from email.utils import formatdate

from mailpipe.ingress import replies
from mailpipe.mailstore.directory import Directory


def parse_networks(cidrs: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def in_networks(ip: str | None, networks) -> bool:
    if not ip or not networks:
        return False
    try:
        address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in net for net in networks)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def check_recipient(address: str, directory: Directory, *, may_relay: bool) -> str:
    """The reply for RCPT TO:<address> (a 250 reply means accept)."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return replies.BAD_ADDRESS
    if domain.startswith("["):
        # address literals are never local: relay rules apply (RFC 5321 4.1.3)
        return replies.RCPT_OK if may_relay else replies.RELAY_DENIED.format(address=printable(address))
    if directory.is_local_domain(domain_of(address)):
        if any(c in local for c in '%!@:"\\') or not directory.expand(address):
            return replies.UNKNOWN_USER.format(address=printable(address))
        return replies.RCPT_OK
    if may_relay:
        return replies.RCPT_OK
    return replies.RELAY_DENIED.format(address=printable(address))


def postmaster_address(directory: Directory, hostname: str) -> str:
    """Where ``RCPT TO:<Postmaster>`` (no domain, RFC 5321 4.5.1) goes: the postmaster of the
    host name's domain or of the nearest parent domain that is local (mx.example.test, then
    example.test); if none of them has a postmaster, the first local one; else the host name's."""
    labels = hostname.lower().rstrip(".").split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)] or [hostname.lower()]
    local = [d for d in candidates if directory.is_local_domain(d)]
    for domain in local:
        if directory.expand(f"postmaster@{domain}"):
            return f"postmaster@{domain}"
    return f"postmaster@{local[0] if local else hostname.lower()}"


def printable(text: str) -> str:
    return "".join(c if c.isprintable() and c not in "<>" else "?" for c in text)[:256]


def received_header(*, helo: str | None, peer_ip: str | None, hostname: str, queue_id: str,
                    protocol: str, recipient: str | None, auth_user: str | None = None,
                    now: float | None = None) -> bytes:
    """The Received header (RFC 5321 4.4) that ingress prepends, CRLF-terminated."""
    parts = [f"Received: from {printable(helo or 'unknown')} ([{peer_ip or 'unknown'}])"]
    if auth_user:
        parts.append(f"\t(authenticated sender: {auth_user})")
    parts.append(f"\tby {hostname} (mailpipe) with {protocol} id {queue_id}")
    if recipient:
        parts.append(f"\tfor <{printable(recipient)}>;")
    else:
        parts[-1] += ";"
    parts.append(f"\t{formatdate(now if now is not None else time.time(), localtime=False)}")
    return ("\r\n".join(parts) + "\r\n").encode("utf-8", "surrogateescape")
