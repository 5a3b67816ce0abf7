"""The retry schedule and destination state are pure: fake clock, no sleeps."""

from __future__ import annotations

from mailpipe.core.clock import FakeClock
from mailpipe.delivery.retry import DestinationState, backoff, delay_warning_due, next_attempt
from mailpipe.core.config import RelayConfig

CFG = RelayConfig()


def test_postfix_like_defaults():
    assert [backoff(n, CFG) for n in range(1, 7)] == [300, 600, 1200, 2400, 4000, 4000]
    assert backoff(10_000, CFG) == 4000          # no overflow for absurd attempt counts


def test_next_attempt_is_absolute_and_capped_at_expiry():
    first = 1_000_000.0
    assert next_attempt(1, first, first, CFG) == first + 300
    assert next_attempt(3, first, first + 900, CFG) == first + 900 + 1200
    late = first + 5 * 86400 - 100
    assert next_attempt(6, first, late, CFG) == first + 5 * 86400   # last try exactly at expiry


def test_give_up_after_lifetime():
    first = 1_000_000.0
    assert next_attempt(9, first, first + 5 * 86400, CFG) is None
    assert next_attempt(9, first, first + 5 * 86400 + 1, CFG) is None


def test_fast_schedule_for_tests():
    fast = RelayConfig(retry_first=1, retry_max=3, max_lifetime=10)
    times, now, attempts = [], 0.0, 0
    while True:
        attempts += 1
        due = next_attempt(attempts, 0.0, now, fast)
        if due is None:
            break
        times.append(due)
        now = due
        assert attempts < 100
    assert times == [1, 3, 6, 9, 10]


def test_delay_warning_off_by_default_and_once():
    assert not delay_warning_due(0, 10 * 86400, False, CFG)
    warn = RelayConfig(delay_warning=4 * 3600)
    assert not delay_warning_due(0, 4 * 3600 - 1, False, warn)
    assert delay_warning_due(0, 4 * 3600, False, warn)
    assert not delay_warning_due(0, 5 * 3600, True, warn)


def test_down_mark_lasts_the_minimum_backoff_and_can_be_cleared():
    clock = FakeClock(1000.0)
    state = DestinationState(CFG, clock)
    assert state.down_until("example.test") is None
    state.mark_down("Example.TEST", "4.4.1 connect to mx: Connection refused")
    assert state.down_until("example.test") == 1300.0
    assert "Connection refused" in state.down_reason("example.test")
    clock.advance(299)
    assert state.down_until("example.test") == 1300.0
    clock.advance(1)
    assert state.down_until("example.test") is None
    state.mark_down("example.test")
    state.clear()
    assert state.down_until("example.test") is None


def test_concurrency_limit_per_destination():
    state = DestinationState(RelayConfig(max_per_destination=2), FakeClock())
    assert state.acquire("a.test") and state.acquire("a.test")
    assert not state.acquire("a.test")
    assert state.acquire("b.test")                 # other destinations are independent
    state.release("a.test")
    assert state.acquire("a.test")
    assert state.active("a.test") == 2


def test_rate_limit_messages_per_minute():
    clock = FakeClock(0.0)
    state = DestinationState(RelayConfig(rate_per_destination=3), clock)
    for _ in range(3):
        assert state.rate_delay("big.test") == 0
        state.record_sent("big.test")
        clock.advance(10)
    assert state.rate_delay("big.test") == 30      # first send at t=0 leaves the window at t=60
    clock.advance(30)
    assert state.rate_delay("big.test") == 0
    assert DestinationState(CFG, clock).rate_delay("big.test") == 0   # unlimited by default
