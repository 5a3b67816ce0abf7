"""Trouble inside and outside: failing publish, a crashing seam, TLS garbage, certificate reload.
Replies stay 4xx with fixed text; exception text never reaches the client; the listener stays up."""

from __future__ import annotations

import shutil
import smtplib
import ssl

import trustme

from mailpipe.core.errors import BrokerUnavailable
from mailpipe.ingress import replies
from tests.ingress.conftest import HOST, HOSTNAME
from tests.ingress.rawclient import RawClient

MESSAGE = b"Subject: x\r\n\r\nbody\r\n"


def send(server) -> tuple[int, bytes]:
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.ehlo()
        client.mail("a@sender.test")
        client.rcpt("alice@example.test")
        return client.data(MESSAGE)


def test_broker_down_is_451_and_nothing_stays_spooled(server):
    def down(stage, qid):
        raise BrokerUnavailable("broker said: connection refused to secret-host:5672")
    server.ctx.publish = down
    assert send(server) == (451, replies.BROKER_DOWN[4:].encode())
    assert server.spool.ids() == []


def test_unexpected_exception_text_never_reaches_the_client(server):
    def broken(stage, qid):
        raise KeyError("internal-detail-xyz")
    server.ctx.publish = broken
    code, text = send(server)
    assert (code, text) == (451, replies.LOCAL_ERROR[4:].encode())
    assert b"internal-detail-xyz" not in text and b"KeyError" not in text
    assert server.spool.ids() == []                                # nothing half accepted
    server.ctx.publish = lambda stage, qid: server.published.append((stage, qid))
    assert send(server)[0] == 250                                  # still serving


def test_plaintext_on_the_smtps_port_does_not_hurt(server, client_tls):
    with RawClient(server.port("smtps")) as client:
        client.send(b"EHLO plain.test\r\n")
        assert client.closed()
    with smtplib.SMTP_SSL(HOST, server.port("smtps"), context=client_tls, timeout=10) as ok:
        assert ok.ehlo()[0] == 250


def test_garbage_instead_of_a_handshake_after_starttls(server, client_tls):
    with RawClient(server.port("submission")) as client:
        client.reply()
        client.command(b"EHLO c.test")
        assert client.command(b"STARTTLS") == replies.TLS_READY
        client.send(b"\x16\x03\x01\x00\x05hello garbage\r\n")
        assert client.closed()
    with smtplib.SMTP(HOST, server.port("submission"), timeout=10) as ok:
        ok.starttls(context=client_tls)
        assert ok.ehlo()[0] == 250


def test_starttls_command_injection_is_discarded(server, client_tls):
    with RawClient(server.port("submission")) as client:
        client.reply()
        client.command(b"EHLO c.test")
        client.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@x.test>\r\n")   # one segment
        assert client.reply() == replies.TLS_READY
        assert client.buf == b""                                  # nothing answered the injection
        client.sock = client_tls.wrap_socket(client.sock, server_hostname=HOSTNAME)
        assert client.command(b"EHLO c.test").startswith("250-")
        assert client.command(b"RCPT TO:<alice@example.test>") == replies.NEED_MAIL


def test_certificate_reload(server, tmp_path):
    other_ca = trustme.CA()
    issued = other_ca.issue_cert(HOSTNAME)
    issued.cert_chain_pems[0].write_to_path(tmp_path / "new.crt")
    issued.private_key_pem.write_to_path(tmp_path / "new.key")
    shutil.copy(tmp_path / "new.crt", server.config.tls.cert)
    shutil.copy(tmp_path / "new.key", server.config.tls.key)
    server.ctx.tls.reload()                                       # what SIGHUP does
    context = ssl.create_default_context()
    other_ca.configure_trust(context)
    context.check_hostname = False
    with smtplib.SMTP_SSL(HOST, server.port("smtps"), context=context, timeout=10) as client:
        assert client.ehlo()[0] == 250                            # the new chain verifies
