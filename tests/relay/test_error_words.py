"""Deferral reasons read as a person writes them, never an exception's class name (issue 17.13).

Real servers on loopback: one that never greets (the greeting times out), one
that hangs up after the final "." (the reply is lost).
"""

from __future__ import annotations

import errno
import socket

from mailpipe.core.clock import FakeClock
from mailpipe.core.errtext import say
from mailpipe.delivery.relay import Relay
from tests.relay.conftest import LineServer, drop_after_dot

MSG = b"From: alice@local.test\r\nSubject: hi\r\n\r\nhello\r\n"


def test_words_for_errors():
    assert say(TimeoutError()) == "timed out" and say(socket.timeout()) == "timed out"
    assert say(OSError(errno.ECONNREFUSED, "Connection refused")) == "connection refused"
    assert say(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"
    assert say(ConnectionResetError()) == "connection closed"


def test_greeting_timeout_reads_as_words(dns_cfg, relay_cfg, receivers):
    silent = LineServer("127.0.0.1", receivers.port, drop_after_dot, greeting=None)
    cfg = relay_cfg.model_copy(update={"greeting_timeout": 0.3})
    try:
        relay = Relay(cfg, dns_cfg, "mail.local.test", clock=FakeClock())
        results = relay.deliver_message("alice@local.test", ["bob@ok.test"], MSG, "W1")
        relay.close()
    finally:
        silent.close()
    assert results[0].status == "deferred"
    assert results[0].reply.endswith("while opening the session: timed out"), results[0].reply
    assert "Error" not in results[0].reply             # TimeoutError, ConnectionResetError, SSLError...
