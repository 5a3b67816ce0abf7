"""Issue 17.13: one address family failing does not throw away the other's addresses.

A real DNS server on loopback (dnslib) answers A for the MX host but REFUSEs
AAAA (or times out on AAAA); the relay must still deliver to the A address, to
a real SMTP receiver. Deferral texts read as a person writes them.
"""

from __future__ import annotations

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.config import DnsConfig, RelayConfig
from mailpipe.delivery.errors import TemporaryDnsError
from mailpipe.delivery.mx import MxResolver
from mailpipe.delivery.relay import Relay
from tests.relay.conftest import ScriptedHandler
from tests.relay.dnsserver import TestDnsServer, ZoneResolver

ZONE = """
mxtest.test.      300 IN MX 10 mx1.mxtest.test.
mx1.mxtest.test.  300 IN A 127.0.0.1
slow6.test.       300 IN MX 10 mx.slow6.test.
mx.slow6.test.    300 IN A 127.0.0.1
both.test.        300 IN MX 10 mx.both.test.
mx.both.test.     300 IN A 127.0.0.1
"""
MSG = b"From: alice@local.test\r\nTo: bob@mxtest.test\r\nSubject: hi\r\n\r\nhello\r\n"
DNS_NAMES = ("NoNameservers", "LifetimeTimeout", "Timeout", "NXDOMAIN", "NoAnswer")


@pytest.fixture(scope="module")
def refusing_dns():
    resolver = ZoneResolver(ZONE, refuse={("mx1.mxtest.test", "AAAA"), ("mx.both.test", "AAAA"),
                                          ("mx.both.test", "A"), ("down.test", "MX")},
                            drop={"mx.slow6.test", "gone.test"})
    with TestDnsServer(resolver) as server:
        yield server


@pytest.fixture
def cfg(refusing_dns) -> DnsConfig:
    return DnsConfig(nameservers=[refusing_dns.nameserver], timeout=0.5)


def test_refused_aaaa_keeps_the_a_record(cfg):
    for prefer_ipv6 in (False, True):
        dest = MxResolver(cfg, RelayConfig(smtp_port=2600, prefer_ipv6=prefer_ipv6)).resolve("mxtest.test")
        assert [(h.name, h.addresses) for h in dest.hosts] == [("mx1.mxtest.test", ("127.0.0.1",))]


def test_delivers_through_a_when_aaaa_is_refused(cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")
    relay = Relay(relay_cfg, cfg, "mail.local.test", clock=FakeClock())
    try:
        results = relay.deliver_message("alice@local.test", ["bob@mxtest.test"], MSG, "QAAAA")
    finally:
        relay.close()
    assert [r.status for r in results] == ["sent"], results
    assert len(handler.messages) == 1


def test_no_answer_at_all_defers_as_a_timeout(cfg):
    """mx.slow6.test never answers (either family): with no address at all it defers."""
    with pytest.raises(TemporaryDnsError) as err:
        MxResolver(cfg, RelayConfig()).resolve("slow6.test")
    assert str(err.value).startswith("DNS timeout looking up ")
    assert not any(name in str(err.value) for name in DNS_NAMES)


def test_no_family_answers_defers_with_words(cfg):
    with pytest.raises(TemporaryDnsError) as err:
        MxResolver(cfg, RelayConfig()).resolve("both.test")
    assert "mx.both.test" in str(err.value) and not any(n in str(err.value) for n in DNS_NAMES)


def test_mx_timeout_and_refusal_texts(cfg):
    with pytest.raises(TemporaryDnsError) as err:
        MxResolver(cfg, RelayConfig()).resolve("gone.test")
    assert str(err.value) == "DNS timeout looking up MX for gone.test"
    with pytest.raises(TemporaryDnsError) as err:
        MxResolver(cfg, RelayConfig()).resolve("down.test")
    assert str(err.value) == "no DNS server answered (server failure or refused) looking up MX for down.test"
