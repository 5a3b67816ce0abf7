"""core.authlimit: per-address and per-account counts, atomic reservations (pure, fake clock)."""

from __future__ import annotations

import threading

from mailpipe.core.authlimit import FailureLimiter
from mailpipe.core.clock import FakeClock


def test_success_clears_only_that_account():
    limiter = FailureLimiter(5, 300, FakeClock())
    for _ in range(4):
        limiter.failure(limiter.reserve("1.2.3.4", "alice@x"))
    limiter.success(limiter.reserve("1.2.3.4", "bob@x"))
    limiter.failure(limiter.reserve("1.2.3.4", "alice@x"))
    assert limiter.reserve("1.2.3.4", "alice@x") is None
    assert limiter.reserve("1.2.3.4", "bob@x") is None           # the address is locked


def test_account_is_locked_across_addresses_and_the_lock_expires():
    clock = FakeClock()
    limiter = FailureLimiter(5, 300, clock, max_account_failures=6)
    for i in range(6):
        limiter.failure(limiter.reserve(f"10.0.0.{i}", "alice@x"))
    assert limiter.reserve("10.0.1.1", "ALICE@x") is None
    assert limiter.reserve("10.0.1.1", "bob@x") is not None
    clock.advance(301)
    assert limiter.reserve("10.0.1.1", "alice@x") is not None


def test_reservations_are_atomic():
    limiter = FailureLimiter(5, 300, FakeClock())
    start = threading.Barrier(40)
    tickets = []

    def attempt() -> None:
        start.wait(10)
        tickets.append(limiter.reserve("1.2.3.4", "alice@x"))

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(t is not None for t in tickets) == 5


def test_release_gives_the_attempt_back_and_records_are_bounded():
    limiter = FailureLimiter(1, 300, FakeClock(), max_records=100)
    limiter.release(limiter.reserve("1.2.3.4", "alice@x"))
    assert limiter.reserve("1.2.3.4", "alice@x") is not None
    for i in range(1000):
        limiter.reserve(f"10.0.{i // 256}.{i % 256}", f"u{i}@x")
    assert len(limiter._records) <= 100


def test_delay_grows_and_is_capped():
    limiter = FailureLimiter(50, 300, FakeClock(), max_account_failures=50, delay_cap=2.0)
    delays = [limiter.failure(limiter.reserve("1.2.3.4", "a@x")) for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]
