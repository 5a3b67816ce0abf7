"""Every POP3 command and state transition, with poplib against the real server."""

from __future__ import annotations

import base64
import os
import poplib

import pytest

from mailpipe.access.pop3 import replies as R
from tests.pop3.conftest import OTHER, PASSWORD, USER

SIMPLE = b"From: a@example.org\r\nSubject: s\r\n\r\nbody line 1\r\nbody line 2\r\n"


def _err(exc: pytest.ExceptionInfo, reply: R.Reply) -> None:
    assert exc.value.args[0] == reply.line().rstrip(b"\r\n")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_greeting_has_no_apop_timestamp(server):
    client = server.connect()
    assert client.getwelcome() == R.GREETING.line().rstrip(b"\r\n")
    assert b"<" not in client.getwelcome()
    client.quit()


def test_capa_before_login_offers_user_and_sasl_not_apop_or_stls(server):
    client = server.connect()
    capa = client.capa()
    for name in ("USER", "SASL", "UIDL", "TOP", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION"):
        assert name in capa
    assert capa["SASL"] == ["PLAIN", "LOGIN"]
    assert "STLS" not in capa and "APOP" not in capa
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd(f"APOP {USER} c4c9334bac560ecc979e58001b3e22fb")
    _err(exc, R.BAD_COMMAND)
    client.quit()


def test_transaction_commands_refused_before_login(server):
    client = server.connect()
    for command in (client.stat, client.noop, client.rset):
        with pytest.raises(poplib.error_proto) as exc:
            command()
        _err(exc, R.BAD_STATE)
    with pytest.raises(poplib.error_proto) as exc:
        client.retr(1)
    _err(exc, R.BAD_STATE)
    client.quit()


def test_pass_without_user_and_wrong_password(server):
    client = server.connect()
    with pytest.raises(poplib.error_proto) as exc:
        client.pass_(PASSWORD)
    _err(exc, R.NEED_USER)
    client.user(USER)
    with pytest.raises(poplib.error_proto) as exc:
        client.pass_("wrong")
    _err(exc, R.AUTH_FAILED)
    assert server.delays == [0.5]
    client.user(USER)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()


def test_stls_and_user_refused_after_login(server):
    client = server.login()
    with pytest.raises(poplib.error_proto) as exc:
        client.user(USER)
    _err(exc, R.BAD_STATE)
    assert "USER" not in client.capa()
    client.quit()


def test_auth_plain_with_initial_response(server):
    client = server.connect()
    reply = client._shortcmd("AUTH PLAIN " + _b64(f"\0{USER}\0{PASSWORD}"))
    assert reply.startswith(b"+OK maildrop locked")
    client.quit()


def test_auth_plain_with_continuation_and_authzid(server):
    client = server.connect()
    client._putcmd("AUTH PLAIN")
    assert client._getline()[0] == b"+ "
    assert client._shortcmd(_b64(f"{USER}\0{USER}\0{PASSWORD}")).startswith(b"+OK")
    client.quit()


def test_auth_login(server):
    client = server.connect()
    client._putcmd("AUTH LOGIN")
    assert client._getline()[0] == R.SASL_USERNAME.rstrip(b"\r\n")
    client._putcmd(_b64(USER))
    assert client._getline()[0] == R.SASL_PASSWORD.rstrip(b"\r\n")
    assert client._shortcmd(_b64(PASSWORD)).startswith(b"+OK")
    assert client.stat() == (0, 0)
    client.quit()


def test_auth_cancel_bad_mechanism_bad_password_and_listing(server):
    client = server.connect()
    client._putcmd("AUTH PLAIN")
    client._getline()
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("*")
    _err(exc, R.SASL_CANCELLED)
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("AUTH CRAM-MD5")
    _err(exc, R.NO_MECHANISM)
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("AUTH PLAIN " + _b64(f"\0{USER}\0nope"))
    _err(exc, R.AUTH_FAILED)
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("AUTH PLAIN !!notbase64")
    _err(exc, R.SASL_MALFORMED)
    assert client._longcmd("AUTH")[1] == [b"PLAIN", b"LOGIN"]
    client.quit()


def test_list_uidl_stat_with_numbers_and_deleted(server):
    for i in range(3):
        server.deliver(SIMPLE, f"base{i}")
    client = server.login()
    assert client.uidl(2) == b"+OK 2 base1,S=%d" % len(SIMPLE)
    client.dele(2)
    for call in (lambda: client.list(2), lambda: client.uidl(2), lambda: client.retr(2),
                 lambda: client.dele(2), lambda: client.top(2, 0)):
        with pytest.raises(poplib.error_proto) as exc:
            call()
        _err(exc, R.ALREADY_DELETED)
    with pytest.raises(poplib.error_proto) as exc:
        client.list(4)
    _err(exc, R.NO_SUCH_MESSAGE)
    with pytest.raises(poplib.error_proto) as exc:
        client.retr(0)
    _err(exc, R.NO_SUCH_MESSAGE)
    assert [line.split()[0] for line in client.list()[1]] == [b"1", b"3"]
    assert [line.split()[0] for line in client.uidl()[1]] == [b"1", b"3"]
    assert client.stat() == (2, 2 * len(SIMPLE))
    assert client.noop() == R.NOOP.line().rstrip(b"\r\n")
    assert client.rset() == R.reset(3, 3 * len(SIMPLE)).line().rstrip(b"\r\n")
    assert client.stat() == (3, 3 * len(SIMPLE))
    assert client.quit() == R.signing_off(3).line().rstrip(b"\r\n")
    client = server.login()
    assert client.stat()[0] == 3
    client.quit()


def test_quit_in_authorization_closes_without_update(server):
    server.deliver(SIMPLE, "keep")
    client = server.connect()
    assert client.quit() == R.BYE.line().rstrip(b"\r\n")
    client = server.login()
    assert client.stat()[0] == 1
    client.quit()


def test_commands_are_case_insensitive_and_unknown_ones_refused(server):
    server.deliver(SIMPLE, "m")
    client = server.connect()
    assert client._shortcmd(f"user {USER}").startswith(b"+OK")
    assert client._shortcmd(f"pAsS {PASSWORD}").startswith(b"+OK")
    assert client._shortcmd("stat") == b"+OK 1 %d" % len(SIMPLE)
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("XYZW arg")
    _err(exc, R.BAD_COMMAND)
    with pytest.raises(poplib.error_proto) as exc:
        client._shortcmd("RETR one")
    _err(exc, R.BAD_SYNTAX)
    client.quit()


def test_password_with_spaces(server):
    server.directory.set_password(OTHER, "pass with  spaces ")
    client = server.login(OTHER, "pass with  spaces ")
    assert client.stat() == (0, 0)
    client.quit()


def test_message_numbers_fixed_for_the_session(server):
    server.deliver(SIMPLE, "first")
    client = server.login()
    server.deliver(SIMPLE + b"more\r\n", "second")
    assert client.stat()[0] == 1
    assert client.uidl()[1] == [b"1 first,S=%d" % len(SIMPLE)]
    client.quit()
    client = server.login()
    assert client.stat()[0] == 2
    client.quit()


def test_pipelined_commands_are_answered_in_order(server):
    server.deliver(SIMPLE, "p1")
    client = server.connect()
    client.sock.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST 1\r\nNOOP\r\nQUIT\r\n".encode())
    replies = [client.file.readline() for _ in range(6)]
    assert replies[0] == R.USER_ACCEPTED.line()
    assert replies[1] == R.logged_in(1, len(SIMPLE)).line()
    assert replies[2] == R.stat(1, len(SIMPLE)).line()
    assert replies[3] == R.list_one(1, len(SIMPLE)).line()
    assert replies[4] == R.NOOP.line()
    assert replies[5] == R.signing_off(1).line()
    client.close()
