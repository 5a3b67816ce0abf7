"""Where mail for a domain goes: MX resolution (RFC 5321 5.1, RFC 7505) and static routes.

Owns: turning a domain into a ``Destination`` (hosts in the order to try, each
with its addresses and port): static routes and the ``*`` smarthost first, then
MX records by preference with random order among equal preferences, the
implicit MX (the domain's own A/AAAA) when there is no MX, CNAME chains, a
TTL cache driven by the injected clock, and translation of dnspython errors::

    NXDOMAIN, null MX ("0 ."), no host with an address  -> PermanentDnsError
    SERVFAIL, timeout, no nameserver answered           -> TemporaryDnsError

A host's addresses are the union of its A and AAAA answers: one family that
fails temporarily (a server that REFUSEs AAAA) does not throw away the other's.
Error texts read as a person writes them ("DNS timeout looking up MX for
example.org"), never dnspython's exception names.

Must not: open SMTP connections, sleep, or read a global configuration.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.rrset

from mailpipe.core.clock import Clock, SystemClock
from mailpipe.delivery.errors import PermanentDnsError, TemporaryDnsError
from mailpipe.core.config import DnsConfig, RelayConfig

MAX_CNAME_DEPTH = 8
MAX_MX_HOSTS = 10   #: like Postfix's smtp_mx_address_limit spirit: never try an unbounded list


@dataclass(frozen=True)
class Host:
    name: str
    addresses: tuple[str, ...]
    port: int
    preference: int = 0

    def relay(self, address: str) -> str:
        """The ``mx.host[1.2.3.4]:25`` form used in logs and results."""
        return f"{self.name}[{address}]:{self.port}"


@dataclass(frozen=True)
class Destination:
    domain: str
    hosts: tuple[Host, ...]


def build_resolver(cfg: DnsConfig) -> dns.resolver.Resolver:
    """A dnspython resolver using ``[dns] nameservers`` ("ip" or "ip:port"), else the system's."""
    res = dns.resolver.Resolver(configure=not cfg.nameservers)
    if cfg.nameservers:
        res.nameservers = [_nameserver(item) for item in cfg.nameservers]
    res.timeout = cfg.timeout
    res.lifetime = cfg.timeout
    return res


def _nameserver(item: str) -> dns.nameserver.Do53Nameserver:
    host, port = split_host_port(item, 53)
    return dns.nameserver.Do53Nameserver(host, port)


def split_host_port(item: str, default_port: int) -> tuple[str, int]:
    """``"h"``, ``"h:p"``, ``"[v6]:p"`` or a bare IPv6 address -> (host, port)."""
    item = item.strip()
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if item.count(":") == 1:
        host, port = item.split(":")
        return host, int(port)
    return item, default_port


#: MX hosts grouped by preference, lowest first, before shuffling
Groups = tuple[tuple[int, tuple[Host, ...]], ...]


@dataclass(frozen=True)
class _Entry:
    """A cached resolution: MX groups (preference, hosts) before shuffling."""

    expires: float
    groups: Groups


class MxResolver:
    """Resolve domains to destinations; thread-safe; cache bounded by TTLs."""

    def __init__(self, cfg_dns: DnsConfig, cfg_relay: RelayConfig, clock: Clock | None = None,
                 resolver: dns.resolver.Resolver | None = None, rng: random.Random | None = None) -> None:
        self.cfg_dns, self.cfg_relay = cfg_dns, cfg_relay
        self.clock = clock or SystemClock()
        self.resolver = resolver or build_resolver(cfg_dns)
        self.rng = rng or random.Random()
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def resolve(self, domain: str) -> Destination:
        domain = domain.rstrip(".").lower()
        static = self._static(domain)
        if static is not None:
            return static
        entry = self._cached(domain)
        if entry is None:
            groups, ttl = self._lookup(domain)
            ttl = min(ttl, self.cfg_dns.cache_max_ttl)
            entry = _Entry(self.clock.now() + ttl, groups)
            with self._lock:
                self._cache[domain] = entry
        return Destination(domain, self._order(entry.groups))

    def forget(self, domain: str | None = None) -> None:
        """Drop cached answers (one domain, or all)."""
        with self._lock:
            if domain is None:
                self._cache.clear()
            else:
                self._cache.pop(domain.rstrip(".").lower(), None)

    # -- static routes ---------------------------------------------------
    def _static(self, domain: str) -> Destination | None:
        routes = self.cfg_relay.static_routes
        target = routes.get(domain) or routes.get("*")
        if target is None:
            return None
        name, port = split_host_port(target, self.cfg_relay.smtp_port)
        addresses, _ = self._addresses(name)
        if not addresses:
            raise PermanentDnsError(f"static route {domain} -> {name}: no address", "5.4.4")
        return Destination(domain, (Host(name, addresses, port, 0),))

    # -- cache and ordering ----------------------------------------------
    def _cached(self, domain: str) -> _Entry | None:
        with self._lock:
            entry = self._cache.get(domain)
            if entry is not None and entry.expires <= self.clock.now():
                del self._cache[domain]
                entry = None
        return entry

    def _order(self, groups: Groups) -> tuple[Host, ...]:
        ordered: list[Host] = []
        for _pref, hosts in groups:
            same = list(hosts)
            self.rng.shuffle(same)
            ordered.extend(same)
        return tuple(ordered[:MAX_MX_HOSTS])

    # -- DNS -------------------------------------------------------------
    def _lookup(self, domain: str) -> tuple[Groups, float]:
        answer = self._query(domain, "MX")
        if answer is None:
            return self._implicit(domain)
        records = [(r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in answer]
        if any(name in ("", ".") for _p, name in records):
            raise PermanentDnsError(f"domain {domain} does not accept mail (null MX)", "5.1.10")
        return self._mx_groups(domain, records, answer.ttl)

    def _implicit(self, domain: str) -> tuple[Groups, float]:
        addresses, ttl = self._addresses(domain)
        if not addresses:
            raise PermanentDnsError(f"domain {domain} has no MX and no address", "5.1.2")
        return ((0, (Host(domain, addresses, self.cfg_relay.smtp_port, 0),)),), ttl

    def _mx_groups(self, domain: str, records: list[tuple[int, str]], ttl: float) -> tuple[Groups, float]:
        by_pref: dict[int, list[Host]] = {}
        temporary: TemporaryDnsError | None = None
        for pref, name in sorted(records):
            try:
                addresses, a_ttl = self._addresses(name)
            except TemporaryDnsError as exc:
                temporary = exc
                continue
            if addresses:
                ttl = min(ttl, a_ttl)
                by_pref.setdefault(pref, []).append(Host(name, addresses, self.cfg_relay.smtp_port, pref))
        if not by_pref:
            if temporary is not None:
                raise temporary
            raise PermanentDnsError(f"no MX host of {domain} has an address", "5.4.4")
        return tuple((p, tuple(h)) for p, h in sorted(by_pref.items())), ttl

    def _addresses(self, name: str) -> tuple[tuple[str, ...], float]:
        """A and AAAA of ``name`` (IPv4 first unless prefer_ipv6); an IP literal is itself.

        A lookup succeeds when any address family gives an address (as Postfix's does):
        a family that fails temporarily is left out. Only when no family gave an
        address and one failed temporarily is the failure raised."""
        if _is_ip(name):
            return (name,), float(self.cfg_dns.cache_max_ttl)
        found: dict[str, list[str]] = {"A": [], "AAAA": []}
        ttl = float(self.cfg_dns.cache_max_ttl)
        temporary: TemporaryDnsError | None = None
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._query(name, rdtype)
            except PermanentDnsError:
                return (), ttl
            except TemporaryDnsError as exc:
                temporary = exc
                continue
            if answer is not None:
                found[rdtype] = [r.address for r in answer]
                ttl = min(ttl, answer.ttl)
        order = ("AAAA", "A") if self.cfg_relay.prefer_ipv6 else ("A", "AAAA")
        addresses = tuple(found[order[0]] + found[order[1]])
        if not addresses and temporary is not None:
            raise temporary
        return addresses, ttl

    def _query(self, name: str, rdtype: str, depth: int = 0) -> dns.rrset.RRset | None:
        """The rrset for ``name``/``rdtype`` following CNAMEs; None when the name has no such data."""
        try:
            answer = self.resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            raise PermanentDnsError(f"{name}: domain not found (NXDOMAIN)", "5.1.2") from None
        except dns.exception.DNSException as exc:
            raise TemporaryDnsError(f"{_problem(exc)} looking up {rdtype} for {name}") from None
        if answer.rrset is not None:
            return answer.rrset
        target = answer.canonical_name.to_text(omit_final_dot=True).lower()
        if target != name.rstrip(".").lower():
            if depth >= MAX_CNAME_DEPTH:
                raise TemporaryDnsError(f"CNAME chain too long looking up {rdtype} for {name}")
            return self._query(target, rdtype, depth + 1)
        return None


def _problem(exc: dns.exception.DNSException) -> str:
    """A dnspython error as an operator would say it (never the exception's class name)."""
    if isinstance(exc, dns.exception.Timeout):
        return "DNS timeout"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "no DNS server answered (server failure or refused)"
    if isinstance(exc, dns.resolver.NoAnswer):
        return "no DNS answer"
    return "DNS error"


def _is_ip(name: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False
