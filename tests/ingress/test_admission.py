"""Connection admission bookkeeping (pure): counts per IP and total, and the greet-pause pass memory."""

from __future__ import annotations

from mailpipe.core.clock import FakeClock
from mailpipe.ingress import replies
from mailpipe.ingress.limits import ConnectionLimits, PassedClients


def test_counts_total_and_per_ip():
    limits = ConnectionLimits(total=3, per_ip=2)
    assert limits.acquire("192.0.2.1") is None
    assert limits.acquire("192.0.2.1") is None
    assert limits.acquire("192.0.2.1") == replies.TOO_MANY_FROM_IP
    assert limits.acquire("192.0.2.2") is None
    assert limits.acquire("192.0.2.3") == replies.TOO_MANY_CONNECTIONS
    limits.release("192.0.2.1")
    assert limits.acquire("192.0.2.3") is None
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        limits.release(ip)
    assert limits.count == 0 and limits.by_ip == {}


def test_passed_clients_expire():
    clock = FakeClock()
    passed = PassedClients(ttl=60, clock=clock)
    assert not passed.passed("192.0.2.1")
    passed.remember("192.0.2.1")
    clock.advance(59)
    assert passed.passed("192.0.2.1")
    clock.advance(2)
    assert not passed.passed("192.0.2.1")


def test_passed_clients_table_is_bounded():
    passed = PassedClients(ttl=60, clock=FakeClock(), max_size=10)
    for i in range(25):
        passed.remember(f"192.0.2.{i}")
    assert len(passed._until) <= 10
