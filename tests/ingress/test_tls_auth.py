"""Real listeners + smtplib: STARTTLS, implicit TLS, AUTH, sender ownership, authenticated relay."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from mailpipe.ingress import replies
from tests.ingress.conftest import HOST, HOSTNAME

MESSAGE = b"From: alice@example.test\r\nSubject: hello\r\n\r\nbody\r\n"


def code_text(reply: str) -> tuple[int, bytes]:
    """A reply constant as smtplib returns it: (code, text after the code)."""
    return int(reply[:3]), reply[4:].encode()


def submission(server, client_tls) -> smtplib.SMTP:
    client = smtplib.SMTP(HOST, server.port("submission"), timeout=10)
    client.starttls(context=client_tls)
    client.ehlo()
    return client


def test_starttls_then_auth_plain_relays_to_foreign_domain(server, client_tls):
    with submission(server, client_tls) as client:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert client.has_extn("auth") and "PLAIN" in client.esmtp_features["auth"]
        assert client.login("alice@example.test", "alice-pw") == code_text(replies.AUTH_OK)
        assert client.sendmail("alice@example.test", ["x@foreign.test"], MESSAGE) == {}
    [qid] = server.queued()
    entry = server.spool.load(qid)
    assert entry.auth_user == "alice@example.test"
    assert entry.recipients[0].address == "x@foreign.test"
    head = server.spool.message(qid).split(b"\r\n\r\n")[0]
    assert b"with ESMTPSA id " + qid.encode() in head
    assert b"(authenticated sender: alice@example.test)" in head


def test_auth_login_mechanism(server, client_tls):
    with submission(server, client_tls) as client:
        client.user, client.password = "bob@example.test", "bob-pw"
        assert client.auth("LOGIN", client.auth_login, initial_response_ok=False)[0] == 235


def test_implicit_tls_submission(server, client_tls):
    with smtplib.SMTP_SSL(HOST, server.port("smtps"), context=client_tls, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        client.login("alice@example.test", "alice-pw")
        client.sendmail("alice@example.test", ["someone@foreign.test"], MESSAGE)
    [qid] = server.queued()
    assert server.spool.load(qid).auth_user == "alice@example.test"


def test_wrong_password_gets_535(server, client_tls):
    with submission(server, client_tls) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login("alice@example.test", "wrong")
        assert (failed.value.smtp_code, failed.value.smtp_error) == code_text(replies.AUTH_FAILED)
    assert server.queued() == []


def test_auth_before_starttls_is_refused_and_not_advertised(server):
    with smtplib.SMTP(HOST, server.port("submission"), timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls") and not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==") == \
            code_text(replies.AUTH_NEEDS_TLS)


def test_submission_requires_auth_before_mail(server, client_tls):
    with submission(server, client_tls) as client:
        assert client.mail("alice@example.test") == code_text(replies.AUTH_REQUIRED)


def test_mx_refuses_relay_without_auth(server):
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.ehlo()
        client.mail("someone@elsewhere.test")
        assert client.rcpt("x@foreign.test") == code_text(replies.RELAY_DENIED.format(address="x@foreign.test"))


def test_sender_must_be_owned_after_auth(server, client_tls):
    with submission(server, client_tls) as client:
        client.login("alice@example.test", "alice-pw")
        refused = replies.SENDER_NOT_OWNED.format(address="bob@example.test", user="alice@example.test")
        assert client.mail("bob@example.test") == code_text(refused)
        client.rset()
        assert client.mail("sales@example.test")[0] == 250          # her alias
        client.rset()
        assert client.mail("ALICE@Example.Test")[0] == 250          # case does not matter


def test_plaintext_auth_on_loopback_when_allowed(make_server):
    server = make_server(tls=False, auth={"plaintext_on_loopback": True})
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.ehlo()
        assert client.has_extn("auth") and not client.has_extn("starttls")
        assert client.login("bob@example.test", "bob-pw")[0] == 235
    assert set(server.ctx.bound) == {"smtp"}                       # no TLS: no submission listeners


def test_failed_auth_locks_out_the_ip(make_server, client_tls):
    server = make_server(auth={"max_failures": 2})
    with submission(server, client_tls) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.login("alice@example.test", "wrong")
        with pytest.raises(smtplib.SMTPAuthenticationError) as locked:
            client.login("alice@example.test", "alice-pw")        # right password, but locked out
        assert (locked.value.smtp_code, locked.value.smtp_error) == code_text(replies.AUTH_LOCKED)


def test_password_is_never_logged(server, client_tls, caplog):
    with submission(server, client_tls) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice@example.test", "Sekret-Zebra-42")
        client.login("alice@example.test", "alice-pw")
    text = caplog.text
    assert "auth: failed for user=alice@example.test" in text
    assert "Sekret-Zebra-42" not in text and "alice-pw" not in text


def test_tls_below_1_2_is_refused(server):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.minimum_version = ssl.TLSVersion.TLSv1
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, OSError, smtplib.SMTPException)):
        smtplib.SMTP_SSL(HOST, server.port("smtps"), context=context, timeout=10).ehlo()


def test_certificate_names_the_host(server, client_tls):
    with smtplib.SMTP_SSL(HOST, server.port("smtps"), context=client_tls, timeout=10) as client:
        cert = client.sock.getpeercert()
        names = {value for kind, value in cert["subjectAltName"]}
        assert HOSTNAME in names
