"""core.sasl: the one PLAIN / LOGIN decoder (pure)."""

from __future__ import annotations

from base64 import b64encode

from hypothesis import given
from hypothesis import strategies as st

from mailpipe.core.sasl import (Challenge, Credentials, Failure, Reason, SaslExchange, same_identity)


def _b64(raw: bytes) -> bytes:
    return b64encode(raw)


def test_plain_and_login():
    assert SaslExchange.start("plain").step(None) == Challenge("")
    assert SaslExchange.start("PLAIN").step(_b64(b"\0a@x\0pw")) == Credentials("a@x", "pw")
    login = SaslExchange.start("LOGIN")
    assert login.step(None) == Challenge("VXNlcm5hbWU6")
    assert login.step(_b64(b"a@x")) == Challenge("UGFzc3dvcmQ6")
    assert login.step(_b64("pässword".encode())) == Credentials("a@x", "pässword")
    assert SaslExchange.start("CRAM-MD5") is None


def test_authzid_rule():
    assert same_identity("", "a@x") and same_identity("A@X.", "a@x") and not same_identity("b@x", "a@x")
    assert SaslExchange.start("PLAIN").step(_b64(b"a@x\0a@x\0pw")) == Credentials("a@x", "pw", "a@x")
    assert SaslExchange.start("PLAIN").step(_b64(b"b@x\0a@x\0pw")) == Failure(Reason.AUTHZID)


def test_failures():
    assert SaslExchange.start("PLAIN").step(b"*") == Failure(Reason.CANCELLED)
    assert SaslExchange.start("PLAIN").step(b"not base64!") == Failure(Reason.BAD_BASE64)
    assert SaslExchange.start("PLAIN").step(_b64(b"\xff\xfe")) == Failure(Reason.BAD_UTF8)
    assert SaslExchange.start("PLAIN").step(_b64(b"no-nuls")) == Failure(Reason.MALFORMED)
    assert SaslExchange.start("PLAIN").step(b"=") == Failure(Reason.MALFORMED)
    assert SaslExchange.start("LOGIN").step(b"=") == Failure(Reason.MALFORMED)


def test_secrets_stay_out_of_repr():
    login = SaslExchange.start("LOGIN")
    login.step(_b64(b"a@x"))
    result = login.step(_b64(b"topsecret"))
    assert "topsecret" not in repr(result) and "topsecret" not in repr(login)


@given(st.binary(max_size=200))
def test_any_response_gives_a_step(data):
    assert isinstance(SaslExchange.start("PLAIN").step(data), (Challenge, Credentials, Failure))
    assert isinstance(SaslExchange.start("LOGIN").step(data), (Challenge, Credentials, Failure))
