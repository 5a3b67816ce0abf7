"""Issue 16.5: one retry-delay policy, the ``[relay]`` schedule, for every deferral.

Pure functions of (attempts, now) with a fake clock; then every kind of
deferral through the real pipeline (a filter daemon down, a stage's
TransientError, a full disk) is checked to follow the same schedule.
"""

from __future__ import annotations

import errno

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.config import Config, RelayConfig
from mailpipe.core.errors import FilterUnavailable
from mailpipe.core.ids import new_queue_id
from mailpipe.delivery.retry import backoff, held_retry_at, next_attempt, retry_at
from mailpipe.filters.verdict import Action, Verdict
from mailpipe.spool.model import Entry, Recipient, State
from mailpipe.workers.app import QUEUE_STAGES
from mailpipe.workers.runtime import Runtime
from tests.support import fast_directory

FAST = RelayConfig(retry_first=10.0, retry_max=70.0, max_lifetime=1000.0)


def test_one_formula_with_an_optional_first_step():
    assert [backoff(n, FAST) for n in range(1, 6)] == [10, 20, 40, 70, 70]
    assert [backoff(n, FAST, first=3.0) for n in range(1, 6)] == [3, 6, 12, 24, 48]
    assert backoff(10_000, FAST, first=3.0) == 70                        # capped by retry_max
    clock = FakeClock()
    assert retry_at(2, clock.now(), FAST) == clock.now() + 20
    assert next_attempt(2, clock.now(), clock.now(), FAST) == retry_at(2, clock.now(), FAST)
    clock.advance(995)
    assert next_attempt(4, clock.now() - 995, clock.now(), FAST) == clock.now() + 5   # lifetime on top


def test_held_back_by_our_own_limits_is_soon_and_bounded():
    now = FakeClock().now()
    assert held_retry_at(0.0, now, RelayConfig()) == now + RelayConfig().slot_retry
    assert held_retry_at(0.2, now, RelayConfig()) == now + 1.0            # not a busy loop
    assert held_retry_at(500.0, now, RelayConfig()) == now + 60.0         # never the long backoff
    assert held_retry_at(0.0, now, FAST.model_copy(update={"slot_retry": 30.0})) == now + 10.0


class Published(list):
    def __call__(self, stage: str, qid: str, redelivered: bool = False) -> None:
        self.append((stage, qid))


class DownFilter:
    name = "antivirus"

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after

    def check(self, msg):
        return Verdict(Action.TEMPFAIL, self.name, reason="clamd unreachable", retry_after=self.retry_after)


@pytest.fixture
def rt(tmp_path):
    config = Config(data_dir=tmp_path, hostname="mx.example.test", relay=FAST.model_dump(),
                    pipeline={"filters": ["antivirus"]})
    directory = fast_directory(tmp_path)
    directory.add_domain("example.test")
    directory.add_user("alice@example.test", "pw")
    return Runtime(config, publish=Published(), served=frozenset(QUEUE_STAGES), clock=FakeClock(),
                   directory=directory)


def _deferrals(rt, rounds: int = 5) -> list[float]:
    qid = new_queue_id()
    rt.spool.create(Entry(id=qid, sender="bob@remote.test", recipients=[Recipient(address="alice@example.test")],
                          size=4, received_at=rt.clock.now()), [b"\r\nhi\r\n"])
    delays = []
    stage = "smtp_in"
    for _ in range(rounds):
        rt.pipeline.run(qid, stage)
        entry = rt.spool.load(qid)
        assert entry.state == State.DEFERRED
        delays.append(entry.next_attempt - rt.clock.now())
        rt.clock.advance(delays[-1])
        entry.state, entry.next_attempt, stage = State.ACTIVE, None, entry.stage
        rt.spool.save(entry)
    return delays


def _raises(exc: Exception):
    def stage(*_args):
        raise exc
    return stage


@pytest.mark.parametrize("kind", ["filter down, no own first step", "stage TransientError", "disk full"])
def test_every_deferral_follows_the_relay_schedule(rt, monkeypatch, kind):
    from mailpipe.workers import stages
    if kind.startswith("filter"):
        rt.filters["antivirus"] = DownFilter(None)
    elif kind == "stage TransientError":
        monkeypatch.setitem(stages.STAGE_FUNCTIONS, "route", _raises(FilterUnavailable("directory down")))
    else:
        monkeypatch.setitem(stages.STAGE_FUNCTIONS, "local", _raises(OSError(errno.ENOSPC, "No space left")))
    assert _deferrals(rt) == [10, 20, 40, 70, 70]


def test_a_filters_retry_after_is_only_the_first_step(rt):
    rt.filters["antivirus"] = DownFilter(3.0)                  # [antivirus] retry_after = 3
    assert _deferrals(rt, 6) == [3, 6, 12, 24, 48, 70]       # capped by [relay] retry_max
