"""The idle watchdog with a fake clock: expiry, re-arming, slow downloads, never outside a client wait."""

from __future__ import annotations

import asyncio

import pytest

from mailpipe.access.pop3.idle import IdleWatchdog
from mailpipe.core.clock import FakeClock


async def _forever() -> None:
    await asyncio.Event().wait()


def _run(body) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(_forever())
        try:
            await body(task)
        finally:
            task.cancel()
    asyncio.run(main())


def test_expires_only_after_idle_time_while_waiting():
    async def body(task):
        clock, queued = FakeClock(), [0]
        dog = IdleWatchdog(600, task, lambda: queued[0], now=clock.now)
        dog.waiting = True
        clock.advance(599)
        dog.check()
        assert not dog.expired
        dog.touch()
        clock.advance(599)
        dog.check()
        assert not dog.expired
        clock.advance(2)
        dog.check()
        assert dog.expired
        await asyncio.sleep(0)                    # let the cancellation land (no time passes)
        assert task.cancelled()
        dog.cancel()
    _run(body)


def test_download_progress_counts_as_activity_and_busy_server_is_not_cut():
    async def body(task):
        clock, queued = FakeClock(), [1000]
        dog = IdleWatchdog(600, task, lambda: queued[0], now=clock.now)
        dog.waiting = True
        clock.advance(700)
        queued[0] = 500                           # the client read something
        dog.check()
        assert not dog.expired
        dog.waiting = False                       # e.g. an UPDATE in progress
        clock.advance(10_000)
        dog.check()
        assert not dog.expired
        dog.cancel()
    _run(body)


def test_wait_turns_expiry_into_timeout_error():
    async def main():
        clock = FakeClock()
        dog = IdleWatchdog(600, asyncio.current_task(), now=clock.now)

        async def expire_soon():
            clock.advance(601)
            dog.check()

        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(expire_soon()))
        with pytest.raises(TimeoutError):
            await dog.wait(_forever())
        assert asyncio.current_task().cancelling() == 0
        dog.cancel()
    asyncio.run(main())


def test_the_login_deadline_is_absolute_and_never_spins():
    async def body(task):
        clock = FakeClock()
        dog = IdleWatchdog(600, task, now=clock.now, until=clock.now() + 60)
        dog.waiting = True
        for _ in range(5):                        # complete commands every 15 s: activity...
            clock.advance(15)
            dog.touch()
            dog.check()
        assert dog.expired                        # ...does not extend the pre-login deadline
        dog.cancel()
    _run(body)


def test_past_the_login_deadline_while_busy_the_timer_backs_off():
    async def body(task):
        clock = FakeClock()
        dog = IdleWatchdog(600, task, now=clock.now, until=clock.now() + 60)
        dog.waiting = False                       # a login check in a thread
        clock.advance(61)
        dog.check()
        assert not dog.expired
        assert dog._handle.when() - asyncio.get_running_loop().time() > 0.01   # not an immediate re-run
        dog.until = None                          # logged in
        dog.waiting = True
        dog.check()
        assert not dog.expired
        dog.cancel()
    _run(body)
