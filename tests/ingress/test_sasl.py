"""SASL PLAIN and LOGIN exchanges (pure)."""

from __future__ import annotations

from base64 import b64encode

from mailpipe.ingress import replies
from mailpipe.ingress.events import AuthRequest
from mailpipe.ingress.sasl import SaslExchange


def test_plain_with_initial_response():
    exchange = SaslExchange.start("plain")
    result = exchange.step(b64encode(b"Alice@x.test\x00alice@x.test\x00pw"))
    assert result == AuthRequest("alice@x.test", "pw", authzid="Alice@x.test")


def test_plain_authzid_of_another_account_is_refused():
    """The authorization identity rule of core.sasl, the same for IMAP and POP3."""
    exchange = SaslExchange.start("plain")
    assert exchange.step(b64encode(b"admin@x.test\x00alice@x.test\x00pw")) == replies.AUTH_FAILED


def test_plain_without_initial_response():
    exchange = SaslExchange.start("PLAIN")
    assert exchange.step(None) == "334 "
    assert exchange.step(b64encode(b"\x00bob@x.test\x00pw")) == AuthRequest("bob@x.test", "pw")


def test_plain_malformed_and_empty():
    assert SaslExchange.start("PLAIN").step(b64encode(b"no-nuls-here")) == replies.AUTH_FAILED
    assert SaslExchange.start("PLAIN").step(b"=") == replies.AUTH_FAILED


def test_login_two_prompts():
    exchange = SaslExchange.start("LOGIN")
    assert exchange.step(None) == "334 VXNlcm5hbWU6"
    assert exchange.step(b64encode(b"alice@x.test")) == "334 UGFzc3dvcmQ6"
    assert exchange.step(b64encode("pässword".encode())) == AuthRequest("alice@x.test", "pässword")


def test_cancel_bad_base64_unknown_mechanism():
    assert SaslExchange.start("LOGIN").step(b"*") == replies.AUTH_CANCELLED
    assert SaslExchange.start("PLAIN").step(b"not base64!") == replies.AUTH_BAD_BASE64
    assert SaslExchange.start("PLAIN").step(b64encode(b"\xff\xfe")) == replies.AUTH_BAD_BASE64
    assert SaslExchange.start("CRAM-MD5") is None


def test_secrets_not_in_repr():
    exchange = SaslExchange.start("LOGIN")
    exchange.step(b64encode(b"alice@x.test"))
    request = exchange.step(b64encode(b"topsecret"))
    assert "topsecret" not in repr(request) and "topsecret" not in repr(exchange)
