"""Every limit against the real MX listener: SIZE, recipients, line length, errors, messages,
connections (total, per IP), early talkers, idle and DATA timeouts (fast configuration, no sleeps)."""

from __future__ import annotations

import smtplib

import pytest

from mailpipe.ingress import replies
from tests.ingress.conftest import HOST
from tests.ingress.rawclient import RawClient

HELLO = b"EHLO client.test"


def greeted(server, **kw) -> RawClient:
    client = RawClient(server.port("smtp"), **kw)
    assert client.reply().startswith("220 ")
    return client


def test_ehlo_on_mx_lists_the_extensions(server):
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.ehlo()
        for name in ("pipelining", "8bitmime", "enhancedstatuscodes", "smtputf8", "starttls"):
            assert client.has_extn(name), name
        assert client.esmtp_features["size"] == str(server.config.ingress.max_message_size)


def test_size_is_enforced(make_server):
    server = make_server(ingress={"max_message_size": 2000})
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "2000"
        assert client.mail("a@sender.test", ["SIZE=5000"]) == (552, replies.SIZE_EXCEEDED[4:].encode())
        client.rset()
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:    # smtplib sends SIZE=<len> itself
            client.sendmail("a@sender.test", ["alice@example.test"], b"Subject: big\r\n\r\n" + b"x" * 3000)
        assert refused.value.smtp_code == 552
    with greeted(server) as raw:                               # a client that lies about (omits) SIZE
        raw.command(HELLO)
        raw.command(b"MAIL FROM:<a@sender.test>")
        raw.command(b"RCPT TO:<alice@example.test>")
        assert raw.command(b"DATA").startswith("354")
        assert raw.command(b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n.") == replies.SIZE_EXCEEDED
        assert raw.command(b"NOOP") == replies.OK              # the session goes on
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.sendmail("a@sender.test", ["alice@example.test"], b"Subject: small\r\n\r\nok\r\n")
    assert len(server.queued()) == 1


def test_recipient_limit(make_server):
    server = make_server(ingress={"max_recipients": 2})
    with greeted(server) as client:
        client.command(HELLO)
        client.command(b"MAIL FROM:<a@sender.test>")
        answers = [client.command(b"RCPT TO:<alice@example.test>") for _ in range(3)]
        assert answers == [replies.RCPT_OK, replies.RCPT_OK, replies.TOO_MANY_RECIPIENTS]


def test_line_length_limit(make_server):
    server = make_server(ingress={"max_line_length": 512})
    with greeted(server) as client:
        assert client.command(b"NOOP " + b"x" * 600) == replies.LINE_TOO_LONG
        assert client.command(b"NOOP") == replies.OK


def test_errors_end_in_421(make_server):
    server = make_server(ingress={"max_errors": 3})
    with greeted(server) as client:
        answers = [client.command(b"BOGUS") for _ in range(3)]
        assert answers == [replies.UNKNOWN_COMMAND] * 3
        assert client.reply() == replies.TOO_MANY_ERRORS
        assert client.closed()


def test_messages_per_connection(make_server):
    server = make_server(ingress={"max_messages_per_connection": 2})
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        for _ in range(2):
            client.sendmail("a@sender.test", ["alice@example.test"], b"Subject: x\r\n\r\nx\r\n")
        assert client.mail("a@sender.test") == (421, replies.TOO_MANY_MESSAGES[4:].encode())
    assert len(server.queued()) == 2


def test_connections_per_ip(make_server):
    server = make_server(ingress={"max_connections_per_ip": 2})
    first, second = greeted(server), greeted(server)
    with RawClient(server.port("smtp")) as third:
        assert third.reply() == replies.TOO_MANY_FROM_IP
        assert third.closed()
    first.command(b"QUIT")
    assert first.closed()
    first.close()
    with greeted(server) as again:                             # a slot is free again
        assert again.command(b"QUIT") == replies.BYE
    second.close()


def test_total_connections_across_listeners(make_server, client_tls):
    server = make_server(ingress={"max_connections": 1})
    with greeted(server):
        with RawClient(server.port("submission")) as other:
            assert other.reply() == replies.TOO_MANY_CONNECTIONS


def test_early_talker_is_refused(make_server):
    server = make_server(ingress={"greet_pause": 0.3})
    with RawClient(server.port("smtp")) as client:
        client.send(b"EHLO hasty.test\r\n")
        assert client.reply() == replies.EARLY_TALKER
        assert client.closed()
    with greeted(server) as patient:                          # waits for the greeting: fine
        assert patient.command(b"NOOP") == replies.OK
    assert server.ctx.passed.passed(HOST)                     # and skips the pause from now on
    with RawClient(server.port("smtp")) as known:
        known.send(b"EHLO known.test\r\n")
        assert known.reply().startswith("220 ")
        assert known.reply().startswith("250")


def test_idle_timeout(make_server):
    server = make_server(ingress={"command_timeout": 0.2})
    with greeted(server) as client:
        assert client.reply(timeout=10) == replies.TIMEOUT   # waits on the server, not a sleep
        assert client.closed()


def test_data_phase_deadline(make_server):
    server = make_server(ingress={"data_timeout": 0.3, "command_timeout": 5.0})
    with greeted(server) as client:
        client.command(HELLO)
        client.command(b"MAIL FROM:<a@sender.test>")
        client.command(b"RCPT TO:<alice@example.test>")
        assert client.command(b"DATA").startswith("354")
        client.send(b"Subject: slow\r\n")
        assert client.reply(timeout=10) == replies.TIMEOUT
    assert server.queued() == []


def test_connection_slots_are_released(server):
    for _ in range(5):
        with greeted(server) as client:
            client.command(b"QUIT")
            assert client.closed()
    assert server.call(_count(server)) == 0


async def _count(server) -> int:
    return server.ctx.connections.count
