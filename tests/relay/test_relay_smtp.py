"""The relay against real receivers: aiosmtpd Controllers, a raw 4xx greeter and Postfix's smtp-sink.

DNS is the real dnslib server from conftest; MX hosts are 127.0.0.x on one port.
"""

from __future__ import annotations

import asyncio
import email
import logging
import threading
import time

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.delivery.dsn import build_dsn
from mailpipe.delivery.mx import MxResolver
from mailpipe.delivery.relay import Relay
from mailpipe.delivery.retry import next_attempt
from mailpipe.delivery.smtp_client import ConnectionPool, deliver
from tests.relay.conftest import Greeter, LineServer, ScriptedHandler, broken_starttls, drop_after_dot

MSG = b"From: alice@local.test\r\nTo: bob@ok.test\r\nSubject: hi\r\n\r\nhello\r\n.dot line\r\n"


def make_relay(dns_cfg, relay_cfg, clock=None) -> Relay:
    return Relay(relay_cfg, dns_cfg, "mail.local.test", clock=clock or FakeClock())


def statuses(results):
    return {r.recipient: r.status for r in results}


def test_delivers_to_the_most_preferred_mx(dns_cfg, relay_cfg, receivers):
    primary = ScriptedHandler()
    backup = ScriptedHandler()
    receivers.start(primary, "127.0.0.1")
    receivers.start(backup, "127.0.0.2")
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test", ["bob@pref.test"], MSG, "Q1")
    relay.close()
    assert statuses(results) == {"bob@pref.test": "sent"}
    assert results[0].relay == f"mx1.pref.test[127.0.0.1]:{receivers.port}"
    assert results[0].reply.startswith("250")
    assert len(primary.messages) == 1 and not backup.messages
    assert primary.messages[0].content.endswith(b"hello\r\n.dot line\r\n")   # dot-stuffing undone


def test_falls_back_to_second_mx_when_first_refuses(dns_cfg, relay_cfg, receivers):
    up = ScriptedHandler()
    receivers.start(up, "127.0.0.1")       # down.fallback.test = 127.0.0.2: nothing listens
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test", ["bob@fallback.test"], MSG, "Q2")
    relay.close()
    assert statuses(results) == {"bob@fallback.test": "sent"}
    assert results[0].relay.startswith("up.fallback.test[127.0.0.1]")
    assert len(up.messages) == 1


def test_next_mx_on_4xx_greeting(dns_cfg, relay_cfg, receivers):
    ok = ScriptedHandler()
    receivers.start(ok, "127.0.0.1")
    busy = Greeter("127.0.0.3", receivers.port, b"421 4.3.2 busy, try later\r\n")
    try:
        relay = make_relay(dns_cfg, relay_cfg)
        results = relay.deliver_message("alice@local.test", ["bob@greet.test"], MSG, "Q3")
        relay.close()
    finally:
        busy.close()
    assert busy.connections == 1
    assert statuses(results) == {"bob@greet.test": "sent"}
    assert len(ok.messages) == 1


def test_implicit_mx_and_cname(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test", ["x@implicit.test", "y@alias.test"], MSG, "Q4")
    relay.close()
    assert statuses(results) == {"x@implicit.test": "sent", "y@alias.test": "sent"}
    assert sorted(r for m in handler.messages for r in m.rcpt_tos) == ["x@implicit.test", "y@alias.test"]


def test_null_mx_nxdomain_servfail(dns_cfg, relay_cfg):
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test",
                                    ["a@nullmx.test", "b@nowhere.test", "c@servfail.test"], MSG, "Q5")
    by = {r.recipient: r for r in results}
    assert by["a@nullmx.test"].status == "failed" and by["a@nullmx.test"].enhanced == "5.1.10"
    assert by["b@nowhere.test"].status == "failed"
    assert by["c@servfail.test"].status == "deferred"


def test_static_route_to_loopback_receiver(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")
    cfg = relay_cfg.model_copy(update={"static_routes": {"nullmx.test": f"127.0.0.1:{receivers.port}"}})
    relay = make_relay(dns_cfg, cfg)
    results = relay.deliver_message("alice@local.test", ["a@nullmx.test"], MSG, "Q6")
    relay.close()
    assert statuses(results) == {"a@nullmx.test": "sent"}
    assert handler.messages[0].rcpt_tos == ["a@nullmx.test"]


def test_451_twice_then_250_is_sent_on_the_third_attempt(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler(data_replies=["451 4.3.0 try again", "451 4.3.0 try again"])
    receivers.start(handler, "127.0.0.1")
    clock = FakeClock(1_000_000.0)
    relay = make_relay(dns_cfg, relay_cfg, clock)
    first_seen, attempts, outcomes = clock.now(), 0, []
    while attempts < 5:
        attempts += 1
        result = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "Q7",
                                       arrival=first_seen, attempts=attempts)[0]
        outcomes.append(result.status)
        if result.status != "deferred":
            break
        due = next_attempt(attempts, first_seen, clock.now(), relay_cfg)
        assert due is not None
        clock.t = due                               # the scheduler would republish now
    relay.close()
    assert outcomes == ["deferred", "deferred", "sent"]
    assert clock.now() == first_seen + 300 + 600
    assert handler.data_attempts == 3 and len(handler.messages) == 1


@pytest.mark.parametrize("pipelining", [False, True])
def test_550_for_one_of_two_recipients(dns_cfg, relay_cfg, receivers, pipelining):
    handler = ScriptedHandler(reject_rcpt={"nobody@ok.test": "550 5.1.1 <nobody@ok.test>: no such user"},
                              pipelining=pipelining)
    receivers.start(handler, "127.0.0.1")
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test", ["bob@ok.test", "nobody@ok.test"], MSG, "Q8")
    relay.close()
    assert statuses(results) == {"bob@ok.test": "sent", "nobody@ok.test": "failed"}
    failed = [r for r in results if r.status == "failed"]
    assert failed[0].enhanced == "5.1.1"
    assert [m.rcpt_tos for m in handler.messages] == [["bob@ok.test"]]
    dsn = email.message_from_bytes(build_dsn(MSG, "alice@local.test", failed, reporting_mta="mail.local.test",
                                             arrival=0.0, queue_id="Q8", now=1.0))
    report = dsn.get_payload()[1].get_payload()
    assert report[1]["Final-Recipient"] == "rfc822; nobody@ok.test"


def test_all_recipients_rejected_sends_no_data(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler(reject_rcpt={"a@ok.test": "550 5.1.1 no", "b@ok.test": "450 4.2.1 later"},
                              pipelining=True)
    receivers.start(handler, "127.0.0.1")
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test", ["a@ok.test", "b@ok.test"], MSG, "Q9")
    relay.close()
    assert statuses(results) == {"a@ok.test": "failed", "b@ok.test": "deferred"}
    assert not handler.messages and handler.data_attempts == 0


def test_size_limit_is_respected(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1", data_size_limit=200)
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG + b"x" * 500, "Q10")
    relay.close()
    assert results[0].status == "failed" and results[0].enhanced == "5.3.4"
    assert not handler.messages


def test_loop_detection(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    controller = receivers.start(handler, "127.0.0.1")
    looped = b"Received: from x by y\r\n" * 51 + MSG
    relay = make_relay(dns_cfg, relay_cfg)
    results = relay.deliver_message("alice@local.test", ["bob@ok.test"], looped, "Q11")
    assert results[0].status == "failed" and results[0].enhanced == "5.4.6"
    assert controller.connections == 0


def test_connection_reuse_for_several_messages(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    controller = receivers.start(handler, "127.0.0.1")
    relay = make_relay(dns_cfg, relay_cfg)
    for i in range(5):
        results = relay.deliver_message("alice@local.test", ["bob@ok.test", "carol@ok2.test"], MSG, f"R{i}")
        assert statuses(results) == {"bob@ok.test": "sent", "carol@ok2.test": "sent"}
    relay.close()
    assert len(handler.messages) == 10
    assert controller.connections == 2             # one session per destination, reused 5 times


def test_stale_pooled_connection_is_replaced(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    controller = receivers.start(handler, "127.0.0.1")
    clock = FakeClock()
    relay = make_relay(dns_cfg, relay_cfg, clock)
    relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "S1")
    clock.advance(relay_cfg.connection_cache_time + 1)       # idle too long: not reused
    relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "S2")
    relay.close()
    assert controller.connections == 2 and len(handler.messages) == 2


def hangs_up_at_rset(line: bytes):
    """A pipelining server that has dropped a session by the time the client reuses it."""
    verb = line[:4].upper()
    if verb == b"EHLO":
        return b"250-raw\r\n250 PIPELINING\r\n"
    if verb == b"RSET":
        return (b"421 4.4.2 idle too long, closing\r\n", "close")
    if verb in (b"MAIL", b"RCPT", b"QUIT"):
        return b"250 2.0.0 ok\r\n"
    if verb == b"DATA":
        return b"354 go ahead\r\n"
    if line == b".":
        return b"250 2.0.0 queued\r\n"
    return b""


def test_reused_session_sends_rset_with_the_next_envelope_and_survives_a_hang_up(dns_cfg, relay_cfg, receivers):
    server = LineServer("127.0.0.1", receivers.port, hangs_up_at_rset)
    try:
        relay = make_relay(dns_cfg, relay_cfg)
        first = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "P1")
        second = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "P2")
        relay.close()
    finally:
        server.close()
    assert first[0].status == second[0].status == "sent"
    assert b"RSET" in server.lines
    assert any(c.startswith(b"RSET\r\nMAIL FROM:") for c in server.chunks)   # one group, no extra round trip
    assert server.connections == 2                              # the dropped session was replaced
    assert server.lines.count(b".") == 2                        # each message sent once in full


def test_refused_destination_is_marked_down(dns_cfg, relay_cfg, receivers):
    clock = FakeClock()
    relay = make_relay(dns_cfg, relay_cfg, clock)         # nothing listens for mx.ok.test
    first = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "D1")[0]
    assert first.status == "deferred" and "Connection refused" in first.reply
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")
    second = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "D2")[0]
    assert second.status == "deferred" and "marked down" in second.reply
    assert "Connection refused" in second.reply and not handler.messages
    relay.state.clear("ok.test")                           # `queue retry` clears the mark
    third = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "D3")[0]
    relay.close()
    assert third.status == "sent" and len(handler.messages) == 1


def test_log_line_format(dns_cfg, relay_cfg, receivers, caplog):
    receivers.start(ScriptedHandler(), "127.0.0.1")
    relay = make_relay(dns_cfg, relay_cfg)
    with caplog.at_level(logging.INFO, logger="mailpipe.relay"):
        relay.deliver_message("alice@local.test", ["bob@ok.test", "x@nullmx.test"], MSG, "LOG1", attempts=2)
    relay.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "mailpipe.relay"]
    assert lines[0].startswith(f"LOG1: to=<bob@ok.test>, relay=mx.ok.test[127.0.0.1]:{receivers.port}, delay=")
    assert "attempts=2, status=sent (250 2.0.0 OK queued)" in lines[0]
    assert lines[1].startswith("LOG1: to=<x@nullmx.test>, relay=none,") and "status=bounced (5.1.10" in lines[1]


def test_lost_reply_to_final_dot_is_deferred_and_no_other_mx_is_tried(dns_cfg, relay_cfg, receivers):
    backup = ScriptedHandler()
    receivers.start(backup, "127.0.0.1")              # ok.greet.test, preference 20
    dropper = LineServer("127.0.0.3", receivers.port, drop_after_dot)   # busy.greet.test, preference 10
    try:
        relay = make_relay(dns_cfg, relay_cfg)
        results = relay.deliver_message("alice@local.test", ["bob@greet.test"], MSG, "L1")
        relay.close()
    finally:
        dropper.close()
    assert results[0].status == "deferred" and results[0].reply.startswith("4.4.2")
    assert "end of data" in results[0].reply
    assert b"." in dropper.lines                        # the whole message was sent
    assert not backup.messages                          # a second copy elsewhere would be a duplicate


def test_greeting_timeout_moves_to_next_mx(dns_cfg, relay_cfg, receivers):
    ok = ScriptedHandler()
    receivers.start(ok, "127.0.0.1")
    silent = LineServer("127.0.0.3", receivers.port, drop_after_dot, greeting=None)
    cfg = relay_cfg.model_copy(update={"greeting_timeout": 0.3})
    try:
        relay = make_relay(dns_cfg, cfg)
        started = time.monotonic()
        results = relay.deliver_message("alice@local.test", ["bob@greet.test"], MSG, "G1")
        elapsed = time.monotonic() - started
        relay.close()
    finally:
        silent.close()
    assert silent.connections == 1 and elapsed < 5
    assert results[0].status == "sent" and len(ok.messages) == 1


def test_without_pool_every_message_opens_a_session(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    controller = receivers.start(handler, "127.0.0.1")
    dest = MxResolver(dns_cfg, relay_cfg).resolve("ok.test")
    for _ in range(3):
        assert deliver(dest, "a@local.test", ["b@ok.test"], MSG, hostname="h.test", cfg=relay_cfg)[0].status == "sent"
    pool = ConnectionPool(relay_cfg)
    for _ in range(3):
        assert deliver(dest, "a@local.test", ["b@ok.test"], MSG, hostname="h.test", cfg=relay_cfg,
                       pool=pool)[0].status == "sent"
    pool.close_all()
    assert controller.connections == 3 + 1 and len(handler.messages) == 6


def test_failed_opportunistic_tls_falls_back_to_plain_text(dns_cfg, relay_cfg, receivers):
    server = LineServer("127.0.0.1", receivers.port, broken_starttls)
    try:
        relay = make_relay(dns_cfg, relay_cfg)
        results = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "F1")
        relay.close()
    finally:
        server.close()
    assert results[0].status == "sent"
    assert server.connections == 2                          # the TLS attempt, then plain text
    assert server.lines.count(b"STARTTLS") == 1


class SlowHandler(ScriptedHandler):
    """Holds DATA until released, so a delivery stays in progress."""

    def __init__(self) -> None:
        super().__init__()
        self.in_data, self.release = threading.Event(), threading.Event()

    async def handle_DATA(self, server, session, envelope):
        self.in_data.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 10)
        return await super().handle_DATA(server, session, envelope)


def test_concurrency_limit_per_destination(dns_cfg, relay_cfg, receivers):
    handler = SlowHandler()
    receivers.start(handler, "127.0.0.1")
    cfg = relay_cfg.model_copy(update={"max_per_destination": 1, "concurrency_wait": 0.0})
    relay = make_relay(dns_cfg, cfg)
    first: list = []
    worker = threading.Thread(target=lambda: first.extend(
        relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "C1")))
    worker.start()
    try:
        assert handler.in_data.wait(10)
        second = relay.deliver_message("alice@local.test", ["carol@ok.test"], MSG, "C2")[0]
    finally:
        handler.release.set()
        worker.join(10)
    other = relay.deliver_message("alice@local.test", ["dave@implicit.test"], MSG, "C3")[0]
    relay.close()
    assert second.status == "deferred" and second.reply.startswith("4.4.5")
    assert first[0].status == "sent" and other.status == "sent"


def test_rate_limit_defers_until_the_window_moves(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")
    clock = FakeClock()
    relay = make_relay(dns_cfg, relay_cfg.model_copy(update={"rate_per_destination": 2}), clock)
    outcomes = [relay.deliver_message("a@local.test", ["b@ok.test"], MSG, f"RT{i}")[0] for i in range(3)]
    assert [r.status for r in outcomes] == ["sent", "sent", "deferred"]
    assert outcomes[2].reply.startswith("4.7.0 rate limit")
    clock.advance(60)
    assert relay.deliver_message("a@local.test", ["b@ok.test"], MSG, "RT3")[0].status == "sent"
    relay.close()
    assert len(handler.messages) == 3


def test_utf8_address_needs_smtputf8(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1", enable_SMTPUTF8=False)
    relay = make_relay(dns_cfg, relay_cfg)
    result = relay.deliver_message("alice@local.test", ["bücher@ok.test"], MSG, "U1")[0]
    relay.close()
    assert result.status == "failed" and result.enhanced == "5.6.7"
    assert not handler.messages


def test_utf8_address_with_smtputf8(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1", enable_SMTPUTF8=True)
    relay = make_relay(dns_cfg, relay_cfg)
    result = relay.deliver_message("alice@local.test", ["bücher@ok.test"], MSG, "U2")[0]
    relay.close()
    assert result.status == "sent"
    assert handler.messages[0].rcpt_tos == ["bücher@ok.test"]


def test_large_message_is_sent_in_blocks(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")
    big = MSG + (b"y" * 998 + b"\r\n") * 600               # ~600 KB, many DATA blocks
    relay = make_relay(dns_cfg, relay_cfg)
    result = relay.deliver_message("alice@local.test", ["bob@ok.test"], big, "BIG")[0]
    relay.close()
    assert result.status == "sent"
    assert handler.messages[0].content == big


def test_forced_retry_ignores_the_down_mark(dns_cfg, relay_cfg, receivers):
    relay = make_relay(dns_cfg, relay_cfg)
    assert relay.deliver_message("a@local.test", ["b@ok.test"], MSG, "FR1")[0].status == "deferred"
    assert relay.state.down_until("ok.test") is not None
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")
    result = relay.deliver_message("a@local.test", ["b@ok.test"], MSG, "FR1", attempts=2, force=True)[0]
    relay.close()
    assert result.status == "sent" and len(handler.messages) == 1
    assert relay.state.down_until("ok.test") is None


def test_relay_disabled_defers_without_connecting(dns_cfg, relay_cfg, receivers):
    controller = receivers.start(ScriptedHandler(), "127.0.0.1")
    relay = make_relay(dns_cfg, relay_cfg.model_copy(update={"enabled": False}))
    result = relay.deliver_message("a@local.test", ["b@ok.test"], MSG, "OFF")[0]
    assert result.status == "deferred" and "disabled" in result.reply
    assert controller.connections == 0
