"""Address normalisation for the account directory. Pure.

Owns: splitting an address, its canonical (lower-cased) form, and the safe
(domain, user) directory names of a local mailbox.

Must not: touch storage.
"""

from __future__ import annotations

import re

from mailpipe.core.errors import AccountError

LOCAL_PART_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_+-])?$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def split_address(address: str) -> tuple[str, str]:
    """Return (local, domain) of an address, domain lower-cased; raise AccountError if malformed."""
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not local or not domain:
        raise AccountError(f"not an address: {address!r}")
    return local, domain.lower().rstrip(".")


def normalize(address: str) -> str:
    local, domain = split_address(address)
    return f"{local.lower()}@{domain}"


def normalize_domain(name: str) -> str:
    return name.strip().lower().rstrip(".")


def mailbox_name(address: str) -> tuple[str, str]:
    """(domain, user) directory names for a local user; safe to join to a path."""
    local, domain = split_address(normalize(address))
    if not LOCAL_PART_RE.match(local) or not DOMAIN_RE.match(domain):
        raise AccountError(f"unsafe mailbox name: {address!r}")
    return domain, local


def encodable(text: str) -> bool:
    """False for text that cannot be UTF-8 (lone surrogates from undecodable client bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canonical_address(address: str) -> str | None:
    """The canonical address, or None for text that cannot name an account (lookups answer "no")."""
    if not encodable(address):
        return None
    try:
        return normalize(address)
    except AccountError:
        return None
