"""No open relay, whatever the address trick: real MX listener, smtplib client, no AUTH."""

from __future__ import annotations

import smtplib

import pytest

from mailpipe.ingress import replies
from mailpipe.ingress.policy import check_recipient
from mailpipe.mailstore.directory import MemoryDirectory
from tests.ingress.conftest import HOST

DENIED, UNKNOWN, SYNTAX = "554 5.7.1", "550 5.1.1", "501 5.1.3"

TRICKS = [
    ("alice%foreign.test@example.test", UNKNOWN),          # % hack
    ("@example.test:alice@foreign.test", DENIED),          # source route: ignored, so it is foreign
    ("@example.test,@mx.example.test:x@foreign.test", DENIED),
    ('"alice@foreign.test"@example.test', UNKNOWN),        # quoted local part
    ('"alice%foreign.test"@example.test', UNKNOWN),
    ("foreign.test!alice@example.test", UNKNOWN),          # bang path
    ("alice@foreign.test.", SYNTAX),                       # trailing dot
    ("alice@example.test.", SYNTAX),
    ("alice@FOREIGN.Test", DENIED),                        # case games
    ("alice@[127.0.0.1]", DENIED),                         # address literals
    ("alice@[192.0.2.1]", DENIED),
    ("alice@[IPv6:::1]", DENIED),
    ("alice@foreign.test@example.test", SYNTAX),
    ("alice@example.test.foreign.test", DENIED),
    ("x@foreign.test", DENIED),
]


def rcpt(server, address: str) -> tuple[int, bytes]:
    with smtplib.SMTP(HOST, server.port("smtp"), timeout=10) as client:
        client.ehlo("client.test")
        assert client.mail("someone@sender.test")[0] == 250
        answer = client.docmd("RCPT", f"TO:<{address}>")
        if answer[0] != 250:
            assert client.docmd("DATA")[0] == 503             # nothing accepted, nothing to send
        return answer


@pytest.mark.parametrize("address, expected", TRICKS)
def test_relay_tricks_are_refused(server, address, expected):
    code, text = rcpt(server, address)
    assert f"{code} {text.decode()}".startswith(expected)
    assert server.queued() == []


def test_local_user_accepted_in_any_case(server):
    assert rcpt(server, "Alice@EXAMPLE.test")[0] == 250
    assert rcpt(server, "sales@example.test")[0] == 250


def test_postmaster_without_domain_is_routed_to_the_hostname(server):
    code, text = rcpt(server, "Postmaster")
    assert code in (250, 550) and b"5.7.1" not in text       # a local question, never relay


def test_trusted_network_may_relay(make_server):
    server = make_server(ingress={"trusted_networks": ["127.0.0.0/8"]})
    assert rcpt(server, "x@foreign.test")[0] == 250


@pytest.mark.parametrize("address, expected", TRICKS)
def test_policy_is_the_same_without_sockets(address, expected):
    from mailpipe.ingress.grammar import parse_command
    parsed = parse_command(f"RCPT TO:<{address}>".encode())
    if isinstance(parsed, str):
        assert parsed.startswith(expected)
        return
    snapshot = MemoryDirectory(("example.test",), {"alice@example.test": "pw"})
    assert check_recipient(parsed.address, snapshot, may_relay=False).startswith(expected)
    if expected == DENIED:
        assert check_recipient(parsed.address, snapshot, may_relay=True) == replies.RCPT_OK
