"""Ingress + the real pipeline in-process: smuggling never yields two messages, SMTPUTF8 reaches the
Maildir intact, and authenticated relay ends in the remote queue (deferred there: no relay configured)."""

from __future__ import annotations

import smtplib

import pytest

from mailpipe.ingress import replies
from mailpipe.mailstore.maildir import maildir_path
from tests.ingress.conftest import HOST
from tests.ingress.rawclient import RawClient
from mailpipe.workers.app import QUEUE_STAGES
from mailpipe.workers.runtime import Runtime


@pytest.fixture
def pipeline(server):
    """Runs every published smtp_in ID through the real pipeline (all stages served here)."""
    runtime = Runtime(server.config, publish=lambda stage, qid: None, served=frozenset(QUEUE_STAGES),
                      directory=server.directory)

    def run_all() -> list[str]:
        ids = server.queued()
        for qid in ids:
            runtime.pipeline.run(qid, "smtp_in")
        return ids
    return run_all


def delivered(server, address: str) -> list[bytes]:
    root = maildir_path(server.config.data_dir, address)
    return [p.read_bytes() for sub in ("new", "cur") if (root / sub).is_dir()
            for p in sorted((root / sub).iterdir())]


def open_transaction(client: RawClient) -> None:
    assert client.reply().startswith("220")
    client.command(b"EHLO attacker.test")
    assert client.command(b"MAIL FROM:<a@sender.test>") == replies.MAIL_OK
    assert client.command(b"RCPT TO:<alice@example.test>") == replies.RCPT_OK
    assert client.command(b"DATA").startswith("354")


SECOND = (b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
          b"From: admin@example.test\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n")


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r.\r\n"])
def test_smuggling_never_produces_a_second_message(server, pipeline, fake_end):
    with RawClient(server.port("smtp")) as client:
        open_transaction(client)
        client.send(b"Subject: first\r\n\r\nfirst body" + fake_end + SECOND + b".\r\n")
        assert client.reply() == replies.BARE_NEWLINE
        assert client.command(b"NOOP") == replies.OK            # no stray replies for the "second" one
        assert client.command(b"QUIT") == replies.BYE
    assert pipeline() == []
    assert delivered(server, "bob@example.test") == []


def test_proper_pipelined_messages_are_two(server, pipeline):
    message = (b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
               b"Subject: one\r\n\r\nbody\r\n.\r\n")
    with RawClient(server.port("smtp")) as client:
        assert client.reply().startswith("220")
        client.command(b"EHLO c.test")
        client.send(message + message.replace(b"one", b"two"))
        answers = [client.reply() for _ in range(8)]
        assert [a[:3] for a in answers] == ["250", "250", "354", "250"] * 2
    assert len(pipeline()) == 2
    assert len(delivered(server, "alice@example.test")) == 2


def test_smtputf8_round_trip_into_maildir(server, pipeline):
    server.directory.add_alias("jürgen@example.test", "alice@example.test")   # mailboxes themselves are ASCII
    body = "From: Zoë <zoë@sender.test>\r\nTo: jürgen@example.test\r\nSubject: Grüße 🌍\r\n\r\nHallo 日本\r\n"
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("zoë@sender.test", ["jürgen@example.test"], body.encode(),
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [qid] = pipeline()
    assert server.spool.load(qid).sender == "zoë@sender.test"
    [stored] = delivered(server, "alice@example.test")
    assert stored.endswith(body.encode())
    assert b" with UTF8SMTP id " in stored.split(b"\r\n\r\n")[0]


def test_authenticated_relay_reaches_the_remote_queue(server, pipeline, client_tls):
    with smtplib.SMTP(HOST, server.port("submission"), timeout=10) as client:
        client.starttls(context=client_tls)
        client.login("alice@example.test", "alice-pw")
        client.sendmail("alice@example.test", ["x@foreign.test"], b"Subject: out\r\n\r\nbye\r\n")
    [qid] = pipeline()
    entry = server.spool.load(qid)
    assert entry.stage == "remote"
    assert entry.auth_user == "alice@example.test"
    assert any(event.stage == "ingress" and "auth=alice@example.test" in event.detail for event in entry.trace)


def test_bdat_message_reaches_the_maildir(server, pipeline):
    body = b"Subject: chunked\r\n\r\nfirst part, second part\r\n"
    with RawClient(server.port("smtp")) as client:
        assert client.reply().startswith("220")
        assert "250-CHUNKING" in client.command(b"EHLO c.test")
        client.command(b"MAIL FROM:<a@sender.test>")
        client.command(b"RCPT TO:<alice@example.test>")
        client.send(b"BDAT 20\r\n" + body[:20] + b"BDAT %d LAST\r\n" % (len(body) - 20) + body[20:])
        assert client.reply() == replies.CHUNK_OK.format(size=20)
        assert client.reply().startswith("250 2.0.0 Ok: queued as ")
    pipeline()
    [stored] = delivered(server, "alice@example.test")
    assert stored.endswith(body)
