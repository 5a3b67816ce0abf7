"""An account directory held in memory: for tests and pure code (the kombu habit).

Implements the same ``Directory`` / ``AccountAdmin`` interface as the SQL
directory and passes the same contract tests. Passwords are kept only as argon2
hashes. One process only: it has nothing to share.

Must not: be used by a server (``open_directory`` builds the SQL one).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailpipe.core.errors import AccountError
from mailpipe.mailstore.directory.addresses import (DOMAIN_RE, canonical_address, encodable, mailbox_name, normalize,
                                                    normalize_domain, split_address)
from mailpipe.mailstore.directory.expand import expand
from mailpipe.mailstore.directory.interface import Mailbox, Removed, check_mail_host


class MemoryDirectory:
    def __init__(self, domains: tuple[str, ...] = (), users: dict[str, str] | None = None,
                 aliases: tuple[tuple[str, str], ...] = (), *, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        self._domains: set[str] = set()
        self._users: dict[str, str] = {}          # address -> argon2 hash
        self._aliases: dict[str, set[str]] = {}
        self._mail_hosts: dict[str, str] = {}       # address -> mail host (absent: the default one)
        for domain in domains:
            self.add_domain(domain)
        for address, password in (users or {}).items():
            self.add_user(address, password)
        for source, target in aliases:
            self.add_alias(source, target)

    # -- lookups --------------------------------------------------------------
    def is_local_domain(self, domain: str) -> bool:
        return normalize_domain(domain) in self._domains

    def mailbox(self, address: str) -> Mailbox | None:
        canonical = canonical_address(address)
        if canonical is None or canonical not in self._users:
            return None
        domain, local = mailbox_name(canonical)
        return Mailbox(canonical, domain, local, self._mail_hosts.get(canonical))

    def expand(self, address: str) -> list[str]:
        canonical = canonical_address(address)
        if canonical is None:
            return []
        return expand(canonical, self._users.__contains__,
                      lambda s: tuple(sorted(self._aliases[s])) if s in self._aliases else None)

    def owns_sender(self, user: str, sender: str) -> bool:
        canonical = canonical_address(sender)
        return canonical is not None and (canonical == user or user in self.expand(canonical))

    def authenticate(self, address: str, password: str) -> str | None:
        canonical = canonical_address(address)
        stored = self._users.get(canonical or "") if encodable(password) else None
        if stored is None:
            return None
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return canonical

    # -- management -------------------------------------------------------------
    def add_domain(self, name: str) -> None:
        name = normalize_domain(name)
        if not DOMAIN_RE.match(name):
            raise AccountError(f"not a domain name: {name!r}")
        if name in self._domains:
            raise AccountError(f"domain {name} already exists")
        self._domains.add(name)

    def domain_contents(self, name: str) -> Removed:
        name = normalize_domain(name)
        if name not in self._domains:
            raise AccountError(f"no such domain: {name}")
        users = tuple(sorted(u for u in self._users if u.endswith("@" + name)))
        aliases = sum(len(t) for s, t in self._aliases.items() if s.rpartition("@")[2] == name)
        return Removed(name, users, aliases)

    def remove_domain(self, name: str) -> Removed:
        removed = self.domain_contents(name)
        for user in removed.users:
            del self._users[user]
        for source in [s for s in self._aliases if s.rpartition("@")[2] == removed.domain]:
            del self._aliases[source]
        self._domains.discard(removed.domain)
        return removed

    def domains(self) -> list[str]:
        return sorted(self._domains)

    def add_user(self, address: str, password: str, mail_host: str | None = None) -> str:
        address = normalize(address)
        mail_host = check_mail_host(mail_host)
        domain, _ = mailbox_name(address)
        if domain not in self._domains:
            raise AccountError(f"domain {domain} is not local (add it with: mailpipe domain add {domain})")
        if not password:
            raise AccountError("empty password")
        if address in self._users:
            raise AccountError(f"user {address} already exists")
        self._users[address] = self.hasher.hash(password)
        if mail_host is not None:
            self._mail_hosts[address] = mail_host
        return address

    def set_mail_host(self, address: str, mail_host: str | None) -> None:
        address, mail_host = normalize(address), check_mail_host(mail_host)
        if address not in self._users:
            raise AccountError(f"no such user: {address}")
        if mail_host is None:
            self._mail_hosts.pop(address, None)
        else:
            self._mail_hosts[address] = mail_host

    def remove_user(self, address: str) -> None:
        self._mail_hosts.pop(normalize(address), None)
        if self._users.pop(normalize(address), None) is None:
            raise AccountError(f"no such user: {normalize(address)}")

    def set_password(self, address: str, password: str) -> None:
        address = normalize(address)
        if not password:
            raise AccountError("empty password")
        if address not in self._users:
            raise AccountError(f"no such user: {address}")
        self._users[address] = self.hasher.hash(password)

    def users(self, domain: str | None = None) -> list[str]:
        return sorted(u for u in self._users if not domain or u.endswith("@" + normalize_domain(domain)))

    def add_alias(self, source: str, target: str) -> None:
        source = source.strip().lower()
        source = source if source.startswith("@") else normalize(source)
        domain = source[1:] if source.startswith("@") else split_address(source)[1]
        if domain not in self._domains:
            raise AccountError(f"alias source domain {domain} is not local")
        targets = self._aliases.setdefault(source, set())
        if normalize(target) in targets:
            raise AccountError(f"alias {source} -> {target} already exists")
        targets.add(normalize(target))

    def remove_alias(self, source: str, target: str) -> None:
        source = source.strip().lower()
        source = source if source.startswith("@") else normalize(source)
        targets = self._aliases.get(source, set())
        if normalize(target) not in targets:
            raise AccountError(f"no such alias: {source} -> {target}")
        targets.discard(normalize(target))
        if not targets:
            del self._aliases[source]

    def aliases(self) -> list[tuple[str, str]]:
        return sorted((s, t) for s, targets in self._aliases.items() for t in targets)

    def close(self) -> None:
        pass
