"""End to end through a real `mailpipe serve` process, on the embedded broker and on RabbitMQ."""

from __future__ import annotations

import json
import smtplib
import uuid

import pytest

from mailpipe.ingress import replies
from tests.support import ServeProcess, add_accounts, free_port, wait_for

pytestmark = pytest.mark.slow


def message(to: str, subject: str = "hello") -> tuple[str, bytes]:
    mid = f"<{uuid.uuid4().hex}@remote.test>"
    body = (f"From: bob@remote.test\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n\r\n"
            "Hello from the test.\r\n.leading dot line\r\n").encode()
    return mid, body


def send(port: int, to: list[str], body: bytes, sender: str = "bob@remote.test") -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("client.remote.test")
        smtp.mail(sender)
        for rcpt in to:
            code, _ = smtp.rcpt(rcpt)
            assert code == 250, (rcpt, code)
        code, reply = smtp.data(body)
    assert code == 250, reply
    text = reply.decode()
    assert text.startswith("2.0.0 Ok: queued as ")
    return text.rsplit(" ", 1)[1]


def test_delivers_into_the_right_maildir(server: ServeProcess):
    mid, body = message("alice@example.test")
    queue_id = send(server.smtp_port, ["alice@example.test"], body)
    files = wait_for(lambda: server.delivered("alice@example.test"), 15, what="delivery")
    assert len(files) == 1
    data = files[0].read_bytes()
    assert mid.encode() in data
    assert data.startswith(b"Return-Path: <bob@remote.test>\r\nDelivered-To: alice@example.test\r\n")
    assert f"id {queue_id}".encode() in data                      # Received header carries the queue ID
    assert b"\r\n.leading dot line\r\n" in data                    # dot-unstuffed exactly once
    assert server.delivered("carol@example.test") == []


def test_unknown_user_and_relay_are_refused_at_rcpt(server: ServeProcess):
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.remote.test")
        smtp.mail("bob@remote.test")
        code, text = smtp.rcpt("nobody@example.test")
        assert f"{code} {text.decode()}" == replies.UNKNOWN_USER.format(address="nobody@example.test")
        code, text = smtp.rcpt("someone@foreign.test")
        assert f"{code} {text.decode()}" == replies.RELAY_DENIED.format(address="someone@foreign.test")


def test_alias_to_two_users_lands_once_in_each(server: ServeProcess):
    mid, body = message("team@example.test")
    send(server.smtp_port, ["team@example.test", "carol@example.test"], body)
    wait_for(lambda: server.delivered("carol@example.test") and server.delivered("dave@example.test"),
             15, what="both deliveries")
    wait_for(lambda: json.loads(server.cli("queue", "list", "--json").stdout) == [], 10, what="empty spool")
    assert len(server.delivered("carol@example.test")) == 1      # alias + direct: still one copy
    assert len(server.delivered("dave@example.test")) == 1
    assert mid.encode() in server.delivered("dave@example.test")[0].read_bytes()


def test_queue_status_lists_every_stage_empty_after_delivery(server: ServeProcess):
    _, body = message("erin@example.test")
    send(server.smtp_port, ["erin@example.test"], body)
    wait_for(lambda: server.delivered("erin@example.test"), 15, what="delivery")
    def drained():
        snap = json.loads(server.cli("queue", "status", "--json").stdout)
        return snap if all(q["depth"] == 0 for q in snap["queues"]) else None
    snap = wait_for(drained, 10, what="empty queues")
    assert [q["stage"] for q in snap["queues"]] == ["smtp_in", "antivirus", "spam", "rules", "route",
                                                    "local", "remote"]
    assert snap["spool"]["active"] == 0


def test_broker_down_gives_451_and_keeps_nothing(tmp_path):
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    srv = ServeProcess(tmp_path, broker_url=dead)
    add_accounts(srv.data_dir, "example.test", ["alice"])
    srv.start()
    try:
        _, body = message("alice@example.test")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as smtp:
            smtp.ehlo("client.remote.test")
            smtp.mail("bob@remote.test")
            assert smtp.rcpt("alice@example.test")[0] == 250
            code, text = smtp.data(body)
        assert f"{code} {text.decode()}" == replies.BROKER_DOWN
        assert json.loads(srv.cli("queue", "list", "--json").stdout) == []
        assert list((srv.data_dir / "spool" / "queue").iterdir()) == []
    finally:
        srv.stop()
