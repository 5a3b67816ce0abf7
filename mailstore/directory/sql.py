"""The SQL account directory (SQLAlchemy: SQLite by default, PostgreSQL for shared installs).

Owns: every query about accounts; per-address lookups behind bounded caches
(LRU + time to live, ``cache.BoundedCache``), negative answers included; the
verified-password cache (an HMAC of the password under a per-process key,
never the password); and the change generation: every management call bumps
it in its own transaction, and each process reads it at most every
``check_interval`` seconds before a lookup, clearing all its caches when it
moved. So a change made by ``mailpipe user del`` in another process is seen
here within ``check_interval`` (+ the time of one lookup).

Must not: copy whole tables into memory, log or store a plaintext password, or
know about SMTP/IMAP/POP3. Construct it only through ``open_directory``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import create_engine, delete, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailpipe.core.clock import Clock
from mailpipe.core.errors import AccountError
from mailpipe.mailstore.directory.addresses import (DOMAIN_RE, canonical_address, encodable, mailbox_name, normalize,
                                                    normalize_domain, split_address)
from mailpipe.mailstore.directory.cache import BoundedCache, ChangeWatch, MonotonicClock
from mailpipe.mailstore.directory.expand import expand
from mailpipe.mailstore.directory.interface import Mailbox, Removed, check_mail_host
from mailpipe.mailstore.directory.schema import GENERATION_ROW, Alias, Base, Domain, Generation, User
from mailpipe.mailstore.directory.upgrade import upgrade

CACHE_ENTRIES = 10_000       #: per cache (domains, users, aliases, verified passwords)
CACHE_TTL = 60.0             #: seconds; a backstop: changes are seen through the generation
CHECK_INTERVAL = 1.0         #: seconds between reads of the change generation
AUTH_TTL = 300.0
_DUMMY = "not a password"


class SqlDirectory:
    def __init__(self, url: str, *, hasher: PasswordHasher | None = None, clock: Clock | None = None,
                 cache_entries: int = CACHE_ENTRIES, cache_ttl: float = CACHE_TTL,
                 check_interval: float = CHECK_INTERVAL) -> None:
        self.engine = create_engine(url, future=True, pool_pre_ping=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        upgrade(self.engine)
        self._ensure_generation()
        self.hasher = hasher or PasswordHasher()
        clock = clock or MonotonicClock()
        self._domains: BoundedCache[str, bool] = BoundedCache(cache_entries, cache_ttl, clock)
        self._users: BoundedCache[str, Mailbox | None] = BoundedCache(cache_entries, cache_ttl, clock)
        self._aliases: BoundedCache[str, tuple[str, ...] | None] = BoundedCache(cache_entries, cache_ttl, clock)
        self._verified: BoundedCache[str, bytes] = BoundedCache(cache_entries, AUTH_TTL, clock)
        self._caches = (self._domains, self._users, self._aliases, self._verified)
        self._watch = ChangeWatch(self._generation, check_interval, clock)
        self._pepper = secrets.token_bytes(32)

    # -- lookups (the Directory interface) ----------------------------------------
    def is_local_domain(self, domain: str) -> bool:
        self._fresh()
        name = normalize_domain(domain)
        if not encodable(name):
            return False
        return self._domains.lookup(name, self._load_domain)

    def mailbox(self, address: str) -> Mailbox | None:
        self._fresh()
        canonical = canonical_address(address)
        return self._users.lookup(canonical, self._load_user) if canonical else None

    def expand(self, address: str) -> list[str]:
        self._fresh()
        canonical = canonical_address(address)
        if canonical is None:
            return []
        return expand(canonical, lambda a: self._users.lookup(a, self._load_user) is not None,
                      lambda s: self._aliases.lookup(s, self._load_alias))

    def owns_sender(self, user: str, sender: str) -> bool:
        canonical = canonical_address(sender)
        return canonical is not None and (canonical == user or user in self.expand(canonical))

    def authenticate(self, address: str, password: str) -> str | None:
        """The canonical address if the password is right, else None. Never logs the password."""
        self._fresh()
        canonical = canonical_address(address)
        if canonical is None or not encodable(password):
            self.hasher.hash(_DUMMY)          # equal work for every failure
            return None
        digest = hmac.new(self._pepper, password.encode("utf-8"), hashlib.sha256).digest()
        cached = self._verified.get(canonical)
        if cached is not None and hmac.compare_digest(cached, digest):
            return canonical
        epoch = self._verified.epoch
        with Session(self.engine) as s:
            user = s.get(User, canonical)
            stored = user.password_hash if user else None
        if stored is None:
            self.hasher.hash(password)
            return None
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        self._verified.put(canonical, digest, epoch)
        return canonical

    # -- management (the AccountAdmin interface) -----------------------------------
    def add_domain(self, name: str) -> None:
        name = normalize_domain(name)
        if not DOMAIN_RE.match(name):
            raise AccountError(f"not a domain name: {name!r}")
        self._insert(Domain(name=name), f"domain {name} already exists")

    def domain_contents(self, name: str) -> Removed:
        """What ``remove_domain`` would remove."""
        name = normalize_domain(name)
        with Session(self.engine) as s:
            if s.get(Domain, name) is None:
                raise AccountError(f"no such domain: {name}")
            users = tuple(sorted(s.scalars(select(User.address).where(User.domain == name))))
            aliases = len(list(s.scalars(select(Alias.source).where(_alias_in(name)))))
        return Removed(name, users, aliases)

    def remove_domain(self, name: str) -> Removed:
        name = normalize_domain(name)
        with Session(self.engine) as s, s.begin():
            if s.get(Domain, name) is None:
                raise AccountError(f"no such domain: {name}")
            users = tuple(sorted(s.scalars(select(User.address).where(User.domain == name))))
            s.execute(delete(User).where(User.domain == name))
            aliases = len(list(s.scalars(select(Alias.source).where(_alias_in(name)))))
            s.execute(delete(Alias).where(_alias_in(name)))
            s.execute(delete(Domain).where(Domain.name == name))
            _bump(s)
        self._clear()
        return Removed(name, users, aliases)

    def domains(self) -> list[str]:
        with Session(self.engine) as s:
            return sorted(s.scalars(select(Domain.name)))

    def add_user(self, address: str, password: str, mail_host: str | None = None) -> str:
        address = normalize(address)
        mail_host = check_mail_host(mail_host)
        domain, _ = mailbox_name(address)
        with Session(self.engine) as s:
            if s.get(Domain, domain) is None:
                raise AccountError(f"domain {domain} is not local (add it with: mailpipe domain add {domain})")
        if not password:
            raise AccountError("empty password")
        self._insert(User(address=address, domain=domain, password_hash=self.hasher.hash(password),
                          mail_host=mail_host),
                     f"user {address} already exists")
        return address

    def remove_user(self, address: str) -> None:
        address = normalize(address)
        with Session(self.engine) as s, s.begin():
            user = s.get(User, address)
            if user is None:
                raise AccountError(f"no such user: {address}")
            s.delete(user)
            _bump(s)
        self._clear()

    def set_password(self, address: str, password: str) -> None:
        address = normalize(address)
        if not password:
            raise AccountError("empty password")
        with Session(self.engine) as s, s.begin():
            user = s.get(User, address)
            if user is None:
                raise AccountError(f"no such user: {address}")
            user.password_hash = self.hasher.hash(password)
            _bump(s)
        self._clear()

    def set_mail_host(self, address: str, mail_host: str | None) -> None:
        address, mail_host = normalize(address), check_mail_host(mail_host)
        with Session(self.engine) as s, s.begin():
            user = s.get(User, address)
            if user is None:
                raise AccountError(f"no such user: {address}")
            user.mail_host = mail_host
            _bump(s)
        self._clear()

    def users(self, domain: str | None = None) -> list[str]:
        query = select(User.address)
        if domain:
            query = query.where(User.domain == normalize_domain(domain))
        with Session(self.engine) as s:
            return sorted(s.scalars(query))

    def add_alias(self, source: str, target: str) -> None:
        source = _alias_source(source)
        domain = source[1:] if source.startswith("@") else split_address(source)[1]
        with Session(self.engine) as s:
            if s.get(Domain, domain) is None:
                raise AccountError(f"alias source domain {domain} is not local")
        self._insert(Alias(source=source, target=normalize(target)), f"alias {source} -> {target} already exists")

    def remove_alias(self, source: str, target: str) -> None:
        source = _alias_source(source)
        with Session(self.engine) as s, s.begin():
            alias = s.get(Alias, (source, normalize(target)))
            if alias is None:
                raise AccountError(f"no such alias: {source} -> {target}")
            s.delete(alias)
            _bump(s)
        self._clear()

    def aliases(self) -> list[tuple[str, str]]:
        with Session(self.engine) as s:
            return sorted((a.source, a.target) for a in s.scalars(select(Alias)))

    def close(self) -> None:
        self.engine.dispose()

    # -- loads, generation, caches ---------------------------------------------------
    def _load_domain(self, name: str) -> bool:
        with Session(self.engine) as s:
            return s.get(Domain, name) is not None

    def _load_user(self, address: str) -> Mailbox | None:
        with Session(self.engine) as s:
            user = s.get(User, address)
            if user is None:
                return None
            domain, local = mailbox_name(address)
            return Mailbox(address, domain, local, user.mail_host, user.quota_bytes)

    def _load_alias(self, source: str) -> tuple[str, ...] | None:
        with Session(self.engine) as s:
            targets = tuple(sorted(s.scalars(select(Alias.target).where(Alias.source == source))))
        return targets or None

    def _generation(self) -> int:
        with Session(self.engine) as s:
            return s.scalar(select(Generation.value).where(Generation.id == GENERATION_ROW)) or 0

    def _ensure_generation(self) -> None:
        try:
            with Session(self.engine) as s, s.begin():
                if s.get(Generation, GENERATION_ROW) is None:
                    s.add(Generation(id=GENERATION_ROW, value=0))
        except IntegrityError:
            pass                              # another process created it at the same moment

    def _fresh(self) -> None:
        if self._watch.changed():
            self._clear()

    def _clear(self) -> None:
        for cache in self._caches:
            cache.clear()

    def _insert(self, row: Base, duplicate_message: str) -> None:
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
                s.flush()
                _bump(s)
        except IntegrityError:
            raise AccountError(duplicate_message) from None
        self._clear()




def _alias_source(source: str) -> str:
    source = source.strip().lower()
    return source if source.startswith("@") else normalize(source)


def _alias_in(domain: str):
    return (Alias.source == "@" + domain) | Alias.source.like(f"%@{domain}")


def _bump(s: Session) -> None:
    s.execute(update(Generation).where(Generation.id == GENERATION_ROW).values(value=Generation.value + 1))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
