"""The account directory: local domains, users with argon2 password hashes, aliases.

Owns: the SQLAlchemy schema and every query about accounts, address
normalisation, alias expansion and password verification.

Must not: log or store a plaintext password, or know about SMTP/IMAP/POP3.
Protocol servers call ``authenticate`` / ``resolve`` / ``owns_sender`` and map
the result to their own replies.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ForeignKey, String, create_engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from mailpipe.core.errors import AccountError

LOCAL_PART_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_+-])?$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_ALIAS_DEPTH = 8


class Base(DeclarativeBase):
    pass


class Domain(Base):
    __tablename__ = "domains"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)


class User(Base):
    __tablename__ = "users"
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    domain: Mapped[str] = mapped_column(ForeignKey("domains.name", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    quota_bytes: Mapped[int] = mapped_column(default=0)


class Alias(Base):
    __tablename__ = "aliases"
    source: Mapped[str] = mapped_column(String(320), primary_key=True)
    target: Mapped[str] = mapped_column(String(320), primary_key=True)


def split_address(address: str) -> tuple[str, str]:
    """Return (local, domain) of an address, domain lower-cased; raise AccountError if malformed."""
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not local or not domain:
        raise AccountError(f"not an address: {address!r}")
    return local, domain.lower().rstrip(".")


def normalize(address: str) -> str:
    local, domain = split_address(address)
    return f"{local.lower()}@{domain}"


def mailbox_name(address: str) -> tuple[str, str]:
    """(domain, user) directory names for a local user; safe to join to a path."""
    local, domain = split_address(normalize(address))
    if not LOCAL_PART_RE.match(local) or not DOMAIN_RE.match(domain):
        raise AccountError(f"unsafe mailbox name: {address!r}")
    return domain, local


@dataclass(frozen=True)
class Snapshot:
    """An immutable in-memory copy of the directory for the hot path (RCPT checks)."""

    domains: frozenset[str]
    users: frozenset[str]
    aliases: dict[str, tuple[str, ...]]

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains

    def resolve(self, address: str) -> list[str]:
        """Local mailboxes an address delivers to (after aliases), [] if none. Loop-safe."""
        return _expand(normalize(address), self.users, self.aliases)

    def owns_sender(self, user: str, sender: str) -> bool:
        """True if `sender` is `user`'s own address or an alias that delivers to it."""
        try:
            sender = normalize(sender)
        except AccountError:
            return False
        return sender == user or user in self.resolve(sender)


def _expand(address: str, users: frozenset[str], aliases: dict[str, tuple[str, ...]]) -> list[str]:
    result: list[str] = []
    seen: set[str] = set()
    pending = [(address, 0)]
    while pending:
        current, depth = pending.pop()
        if current in seen or depth > MAX_ALIAS_DEPTH:
            continue
        seen.add(current)
        targets = aliases.get(current)
        if targets is None:
            domain = current.rpartition("@")[2]
            targets = aliases.get("@" + domain) if current not in users else None
            if targets is not None:
                targets = tuple(t if "@" in t else f"{t}@{domain}" for t in targets)
        if current in users and current not in result:
            result.append(current)
        for target in targets or ():
            pending.append((target, depth + 1))
    return sorted(result)


class Directory:
    """Accounts stored with SQLAlchemy (SQLite by default, PostgreSQL for shared installs)."""

    def __init__(self, url: str, *, hasher: PasswordHasher | None = None) -> None:
        self.engine = create_engine(url, future=True, pool_pre_ping=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self.hasher = hasher or PasswordHasher()
        self._snapshot: tuple[float, Snapshot] | None = None
        self._auth_cache: dict[str, tuple[bytes, float]] = {}
        self._pepper = secrets.token_bytes(32)
        self._lock = threading.Lock()

    # -- domains ---------------------------------------------------------
    def add_domain(self, name: str) -> None:
        name = name.lower().rstrip(".")
        if not DOMAIN_RE.match(name):
            raise AccountError(f"not a domain name: {name!r}")
        self._insert(Domain(name=name), f"domain {name} already exists")

    def remove_domain(self, name: str) -> None:
        name = name.lower().rstrip(".")
        with Session(self.engine) as s, s.begin():
            if s.get(Domain, name) is None:
                raise AccountError(f"no such domain: {name}")
            for user in s.scalars(select(User).where(User.domain == name)):
                s.delete(user)
            s.delete(s.get(Domain, name))
        self._invalidate()

    def domains(self) -> list[str]:
        with Session(self.engine) as s:
            return sorted(s.scalars(select(Domain.name)))

    # -- users -----------------------------------------------------------
    def add_user(self, address: str, password: str) -> str:
        address = normalize(address)
        domain, _ = mailbox_name(address)
        if domain not in self.domains():
            raise AccountError(f"domain {domain} is not local (add it with: mailpipe domain add {domain})")
        if not password:
            raise AccountError("empty password")
        self._insert(User(address=address, domain=domain, password_hash=self.hasher.hash(password)),
                     f"user {address} already exists")
        return address

    def remove_user(self, address: str) -> None:
        address = normalize(address)
        with Session(self.engine) as s, s.begin():
            user = s.get(User, address)
            if user is None:
                raise AccountError(f"no such user: {address}")
            s.delete(user)
        self._invalidate()

    def set_password(self, address: str, password: str) -> None:
        address = normalize(address)
        if not password:
            raise AccountError("empty password")
        with Session(self.engine) as s, s.begin():
            user = s.get(User, address)
            if user is None:
                raise AccountError(f"no such user: {address}")
            user.password_hash = self.hasher.hash(password)
        self._invalidate()

    def users(self, domain: str | None = None) -> list[str]:
        query = select(User.address)
        if domain:
            query = query.where(User.domain == domain.lower())
        with Session(self.engine) as s:
            return sorted(s.scalars(query))

    # -- aliases ---------------------------------------------------------
    def add_alias(self, source: str, target: str) -> None:
        source = source.strip().lower()
        if source.startswith("@"):          # catch-all for a domain
            domain = source[1:]
        else:
            source = normalize(source)
            domain = split_address(source)[1]
        if domain not in self.domains():
            raise AccountError(f"alias source domain {domain} is not local")
        self._insert(Alias(source=source, target=normalize(target)), f"alias {source} -> {target} already exists")

    def remove_alias(self, source: str, target: str) -> None:
        source = source.strip().lower() if source.strip().startswith("@") else normalize(source)
        with Session(self.engine) as s, s.begin():
            alias = s.get(Alias, (source, normalize(target)))
            if alias is None:
                raise AccountError(f"no such alias: {source} -> {target}")
            s.delete(alias)
        self._invalidate()

    def aliases(self) -> list[tuple[str, str]]:
        with Session(self.engine) as s:
            return sorted((a.source, a.target) for a in s.scalars(select(Alias)))

    # -- lookups ---------------------------------------------------------
    def snapshot(self, max_age: float = 2.0) -> Snapshot:
        """A cached read-only copy, refreshed when older than `max_age` seconds."""
        cached = self._snapshot
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        aliases: dict[str, list[str]] = {}
        for source, target in self.aliases():
            aliases.setdefault(source, []).append(target)
        snap = Snapshot(frozenset(self.domains()), frozenset(self.users()),
                        {k: tuple(v) for k, v in aliases.items()})
        self._snapshot = (time.monotonic(), snap)
        return snap

    def authenticate(self, address: str, password: str) -> str | None:
        """The canonical address if the password is right, else None. Never logs the password."""
        try:
            address = normalize(address)
        except AccountError:
            return None
        digest = hmac.new(self._pepper, password.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        cached = self._auth_cache.get(address)
        if cached and cached[1] > time.monotonic() and hmac.compare_digest(cached[0], digest):
            return address
        with Session(self.engine) as s:
            user = s.get(User, address)
            stored = user.password_hash if user else None
        if stored is None:
            self.hasher.hash(password)     # equal work whether or not the user exists
            return None
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        with self._lock:
            self._auth_cache[address] = (digest, time.monotonic() + 300.0)
        return address

    # -- helpers ---------------------------------------------------------
    def _insert(self, row: Base, duplicate_message: str) -> None:
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
        except IntegrityError:
            raise AccountError(duplicate_message) from None
        self._invalidate()

    def _invalidate(self) -> None:
        self._snapshot = None
        self._auth_cache.clear()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
