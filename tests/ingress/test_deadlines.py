"""Issue 17.5 (SMTP): timeouts are absolute deadlines. A command line, the whole DATA/BDAT phase
and the whole AUTH exchange must be finished in time; a client trickling bytes is closed on time.
Real listeners, raw sockets."""

from __future__ import annotations

from tests.ingress.rawclient import RawClient
from tests.trickle import closes_within

SLACK = 1.5      # seconds beyond the configured bound for scheduling on a busy machine


def open_transaction(client: RawClient) -> None:
    """Greeting, EHLO, MAIL and one RCPT, each answered as expected."""
    assert client.reply().startswith("220")
    assert client.command(b"EHLO client.example").startswith("250")
    assert client.command(b"MAIL FROM:<a@example.org>").startswith("250")
    assert client.command(b"RCPT TO:<alice@example.test>").startswith("250")


def test_a_command_line_trickled_byte_by_byte_is_closed_at_its_deadline(make_server):
    server = make_server(tls=False, ingress={"command_timeout": 1.5})
    with RawClient(server.port()) as client:
        assert client.reply().startswith("220")
        took = closes_within(client.sock, b"NOOP" * 200, every=0.3, bound=8)
    assert took is not None and took < 1.5 + SLACK, took


def test_one_byte_bdat_chunks_do_not_outlive_the_data_timeout(make_server):
    server = make_server(tls=False, ingress={"command_timeout": 10, "data_timeout": 2})
    with RawClient(server.port()) as client:
        open_transaction(client)
        took = closes_within(client.sock, b"BDAT 1\r\nx" * 100, every=0.05, bound=10)
    assert took is not None and took < 2 + SLACK, took


def test_the_data_phase_has_one_deadline(make_server):
    server = make_server(tls=False, ingress={"command_timeout": 10, "data_timeout": 2})
    with RawClient(server.port()) as client:
        open_transaction(client)
        assert client.command(b"DATA").startswith("354")
        took = closes_within(client.sock, b"Subject: x\r\n\r\n" + b"line\r\n" * 200, every=0.1, bound=10)
    assert took is not None and took < 2 + SLACK, took


def test_the_auth_exchange_has_one_deadline(make_server):
    server = make_server(tls=False, ingress={"command_timeout": 1.5}, auth={"plaintext_on_loopback": True})
    with RawClient(server.port()) as client:
        assert client.reply().startswith("220")
        assert client.command(b"EHLO client.example").startswith("250")
        assert client.command(b"AUTH LOGIN").startswith("334")
        took = closes_within(client.sock, b"YWxpY2VAZXhhbXBsZS50ZXN0" * 20, every=0.3, bound=8)
    assert took is not None and took < 1.5 + SLACK, took


def test_a_client_that_finishes_its_commands_is_not_cut_off(make_server):
    server = make_server(tls=False, ingress={"command_timeout": 1.5})
    with RawClient(server.port()) as client:
        assert client.reply().startswith("220")
        for _ in range(3):                # each command completes well within its deadline
            assert client.command(b"NOOP").startswith("250")
        assert client.command(b"QUIT").startswith("221")
