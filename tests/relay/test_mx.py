"""MX resolution against a real DNS server on loopback (dnslib), clock injected."""

from __future__ import annotations

import random

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.errors import PermanentError, TransientError
from mailpipe.delivery.errors import PermanentDnsError, TemporaryDnsError
from mailpipe.delivery.mx import MxResolver, split_host_port
from mailpipe.core.config import DnsConfig, RelayConfig


def resolver(dns_cfg, clock=None, rng=None, **relay) -> MxResolver:
    return MxResolver(dns_cfg, RelayConfig(smtp_port=2600, **relay), clock=clock, rng=rng)


def names(dest):
    return [h.name for h in dest.hosts]


def test_mx_preference_order(dns_cfg):
    dest = resolver(dns_cfg).resolve("pref.test")
    assert names(dest) == ["mx1.pref.test", "mx2.pref.test"]
    assert [h.preference for h in dest.hosts] == [10, 20]
    assert dest.hosts[0].addresses == ("127.0.0.1",)
    assert all(h.port == 2600 for h in dest.hosts)


def test_equal_preference_is_shuffled_but_lower_first(dns_cfg):
    mx = resolver(dns_cfg, rng=random.Random(7))
    orders = {tuple(names(mx.resolve("eq.test"))) for _ in range(40)}
    assert orders == {("a.eq.test", "b.eq.test", "c.eq.test"), ("b.eq.test", "a.eq.test", "c.eq.test")}


def test_implicit_mx_uses_the_domain_address(dns_cfg):
    dest = resolver(dns_cfg).resolve("implicit.test")
    assert names(dest) == ["implicit.test"]
    assert dest.hosts[0].addresses == ("127.0.0.1",)


def test_null_mx_is_permanent_5_1_10(dns_cfg):
    with pytest.raises(PermanentDnsError) as err:
        resolver(dns_cfg).resolve("nullmx.test")
    assert err.value.status == "5.1.10"
    assert isinstance(err.value, PermanentError)


def test_nxdomain_is_permanent(dns_cfg):
    with pytest.raises(PermanentDnsError) as err:
        resolver(dns_cfg).resolve("no-such-domain.test")
    assert err.value.status.startswith("5.")


def test_servfail_is_temporary(dns_cfg):
    with pytest.raises(TemporaryDnsError) as err:
        resolver(dns_cfg).resolve("servfail.test")
    assert isinstance(err.value, TransientError)


def test_timeout_is_temporary(dns_server):
    cfg = DnsConfig(nameservers=[dns_server.nameserver], timeout=0.3)
    with pytest.raises(TemporaryDnsError):
        MxResolver(cfg, RelayConfig()).resolve("timeout.test")


def test_cname_is_followed(dns_cfg):
    dest = resolver(dns_cfg).resolve("alias.test")
    assert names(dest) == ["mx.target.test"]
    assert dest.hosts[0].addresses == ("127.0.0.1",)


def test_mx_without_address_is_permanent(dns_cfg):
    with pytest.raises(PermanentDnsError) as err:
        resolver(dns_cfg).resolve("dangling.test")
    assert err.value.status == "5.4.4"


def test_a_and_aaaa_both_resolved(dns_cfg):
    assert resolver(dns_cfg).resolve("v6.test").hosts[0].addresses == ("127.0.0.1", "::1")
    assert resolver(dns_cfg, prefer_ipv6=True).resolve("v6.test").hosts[0].addresses == ("::1", "127.0.0.1")


def test_static_route_bypasses_dns(dns_cfg, dns_server):
    mx = resolver(dns_cfg, static_routes={"nullmx.test": "127.0.0.9:2999", "pref.test": "mx.ok.test"})
    before = len(dns_server.resolver.queries)
    dest = mx.resolve("nullmx.test")
    assert [(h.name, h.addresses, h.port) for h in dest.hosts] == [("127.0.0.9", ("127.0.0.9",), 2999)]
    assert len(dns_server.resolver.queries) == before      # no DNS at all for an IP route
    dest = mx.resolve("pref.test")
    assert [(h.name, h.addresses, h.port) for h in dest.hosts] == [("mx.ok.test", ("127.0.0.1",), 2600)]


def test_smarthost_catches_every_domain(dns_cfg):
    mx = resolver(dns_cfg, static_routes={"*": "[127.0.0.5]:2700"})
    dest = mx.resolve("anything.example")
    assert [(h.addresses, h.port) for h in dest.hosts] == [(("127.0.0.5",), 2700)]


def test_results_cached_for_their_ttl(dns_cfg, dns_server):
    clock = FakeClock()
    mx = resolver(dns_cfg, clock=clock)
    queries = dns_server.resolver.queries
    mx.resolve("ttl.test")
    n = sum(1 for q in queries if q[0] == "ttl.test")
    clock.advance(59)
    mx.resolve("ttl.test")
    assert sum(1 for q in queries if q[0] == "ttl.test") == n      # served from cache
    clock.advance(2)
    mx.resolve("ttl.test")
    assert sum(1 for q in queries if q[0] == "ttl.test") == n + 1  # TTL of 60 s expired


def test_split_host_port():
    assert split_host_port("127.0.0.1:5354", 53) == ("127.0.0.1", 5354)
    assert split_host_port("127.0.0.1", 53) == ("127.0.0.1", 53)
    assert split_host_port("[::1]:5354", 53) == ("::1", 5354)
    assert split_host_port("::1", 53) == ("::1", 53)
