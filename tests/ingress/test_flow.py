"""Flow control at MAIL FROM (``ingress.flow``): a real ingress and smtplib, an injected backlog.

The probe against the real brokers, and the whole loop through ``mailpipe
serve`` with a stopped worker, are in ``tests/spine/test_flow_control.py``.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading

import pytest

from mailpipe.ingress.flow import FlowGate
from tests.support import wait_for

HOST = "127.0.0.1"


class Backlog:
    def __init__(self, value: int | None = 0) -> None:
        self.value = value

    def __call__(self) -> int | None:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


@pytest.fixture
def gated(make_server):
    """A started ingress whose gate reads ``backlog``; the test polls it (``poll_once``)."""
    backlog = Backlog()
    server = make_server(tls=False)

    def make(*, limit: int = 2, delay: float = 30.0) -> tuple:
        gate = FlowGate(backlog, limit=limit, delay=delay, interval=3600.0)   # polled by the test only
        server.ctx.flow = gate
        gate.start(server.loop)
        return server, gate
    yield backlog, make
    flow = server.ctx.flow
    flow.stop()


def send_one(port: int, results: list) -> None:
    with smtplib.SMTP(HOST, port, timeout=60) as smtp:
        results.append(smtp.sendmail("x@remote.test", ["alice@example.test"], b"Subject: t\r\n\r\nhi\r\n"))


def test_below_the_limit_a_message_does_not_wait(gated):
    backlog, make = gated
    server, gate = make(limit=2)
    backlog.value = 2
    gate.poll_once()
    results: list = []
    send_one(server.port(), results)
    assert results == [{}] and gate.paused == 0 and len(server.queued()) == 1


def test_a_backed_up_queue_holds_mail_from_until_it_drains(gated):
    backlog, make = gated
    server, gate = make(limit=2, delay=30.0)
    backlog.value = 3
    gate.poll_once()
    assert gate.congested
    results: list = []
    client = threading.Thread(target=send_one, args=(server.port(), results))
    client.start()
    wait_for(lambda: gate.paused == 1, 10, what="the session to wait at MAIL FROM")
    assert results == [] and server.queued() == []
    backlog.value = 0
    gate.poll_once()
    client.join(10)
    assert results == [{}] and len(server.queued()) == 1
    assert gate.timed_out == 0               # released by the drained queue, not by the 30 s limit


def test_after_the_delay_the_message_goes_on_anyway(gated):
    backlog, make = gated
    server, gate = make(limit=0, delay=0.2)
    backlog.value = 5
    gate.poll_once()
    results: list = []
    send_one(server.port(), results)
    assert results == [{}] and len(server.queued()) == 1
    assert (gate.paused, gate.timed_out) == (1, 1)


def test_an_unreadable_backlog_never_holds_mail(gated):
    backlog, make = gated
    server, gate = make(limit=0)
    backlog.value = 9
    gate.poll_once()
    assert gate.congested
    backlog.value = ConnectionRefusedError("broker down")
    gate.poll_once()
    assert gate.backlog is None and not gate.congested
    results: list = []
    send_one(server.port(), results)
    assert results == [{}] and gate.paused == 0


def test_a_gate_without_a_probe_or_with_no_delay_is_open():
    async def admit(gate: FlowGate) -> float:
        gate.start(asyncio.get_running_loop())
        gate.poll_once()
        try:
            return await asyncio.wait_for(gate.admit(), 5)
        finally:
            gate.stop()
    assert asyncio.run(admit(FlowGate(lambda: None, limit=0, delay=1.0, interval=3600))) == 0.0
    off = FlowGate(lambda: 100, limit=0, delay=0.0, interval=3600)
    assert asyncio.run(admit(off)) == 0.0 and off.congested and off.paused == 0
