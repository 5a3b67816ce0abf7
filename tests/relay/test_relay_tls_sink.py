"""STARTTLS to a trustme-certified aiosmtpd receiver, and delivery to Postfix's smtp-sink."""

from __future__ import annotations

from mailpipe.core.clock import FakeClock
from mailpipe.delivery.relay import Relay
from tests.relay.conftest import ScriptedHandler

MSG = b"From: alice@local.test\r\nTo: bob@tls.test\r\nSubject: tls\r\n\r\nover tls\r\n"


def make_relay(dns_cfg, cfg) -> Relay:
    return Relay(cfg, dns_cfg, "mail.local.test", clock=FakeClock())


def send(dns_cfg, cfg, rcpt):
    relay = make_relay(dns_cfg, cfg)
    try:
        return relay.deliver_message("alice@local.test", [rcpt], MSG, "T1")[0]
    finally:
        relay.close()


def test_opportunistic_starttls(dns_cfg, relay_cfg, receivers, server_tls):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1", tls_context=server_tls)
    result = send(dns_cfg, relay_cfg, "bob@tls.test")     # no CA configured: not verified
    assert result.status == "sent"
    assert handler.messages[0].tls is True


def test_required_tls_verified(dns_cfg, relay_cfg, receivers, server_tls, ca, tmp_path):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1", tls_context=server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cfg = relay_cfg.model_copy(update={"require_tls_domains": ["tls.test"], "tls_ca_file": ca_file})
    result = send(dns_cfg, cfg, "bob@tls.test")
    assert result.status == "sent" and handler.messages[0].tls is True


def test_required_tls_wrong_name_is_deferred(dns_cfg, relay_cfg, receivers, server_tls, ca, tmp_path):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1", tls_context=server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cfg = relay_cfg.model_copy(update={"require_tls_domains": ["badname.test"], "tls_ca_file": ca_file})
    result = send(dns_cfg, cfg, "bob@badname.test")       # cert is for mx.tls.test, MX is wrong.badname.test
    assert result.status == "deferred" and result.enhanced == "4.7.5"
    assert not handler.messages


def test_required_tls_not_offered_is_deferred(dns_cfg, relay_cfg, receivers):
    handler = ScriptedHandler()
    receivers.start(handler, "127.0.0.1")                 # no STARTTLS
    cfg = relay_cfg.model_copy(update={"require_tls_domains": ["tls.test"]})
    result = send(dns_cfg, cfg, "bob@tls.test")
    assert result.status == "deferred" and "not offered" in result.reply
    assert not handler.messages


def test_smtp_sink_receives_pipelined_messages(dns_cfg, relay_cfg, smtp_sink):
    port, dump = smtp_sink
    cfg = relay_cfg.model_copy(update={"smtp_port": port})
    relay = make_relay(dns_cfg, cfg)
    try:
        for i in range(3):
            body = MSG + f"message {i}\r\n".encode()
            results = relay.deliver_message("alice@local.test", ["a@ok.test", "b@ok.test"], body, f"K{i}")
            assert [r.status for r in results] == ["sent", "sent"], results
            assert results[0].relay == f"mx.ok.test[127.0.0.1]:{port}"
    finally:
        relay.close()
    files = sorted(p for p in dump.rglob("*") if p.is_file())
    assert len(files) == 3
    texts = [f.read_bytes() for f in files]
    for text in texts:
        assert b"X-Helo-Args: mail.local.test" in text and b"X-Mail-Args: <alice@local.test>" in text
        assert b"X-Rcpt-Args: <a@ok.test>" in text and b"X-Rcpt-Args: <b@ok.test>" in text
    assert sorted(t.rsplit(b"message ", 1)[1].strip() for t in texts) == [b"0", b"1", b"2"]
