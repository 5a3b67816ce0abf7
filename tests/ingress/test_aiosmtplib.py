"""aiosmtplib (the asyncio client) against the real listeners: STARTTLS and implicit TLS with AUTH."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.ingress.conftest import HOST


def message(sender: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "über aiosmtplib"
    msg.set_content("Grüße\n")
    return msg


def test_starttls_auth_and_send(server, client_tls):
    async def go():
        client = aiosmtplib.SMTP(hostname=HOST, port=server.port("submission"), tls_context=client_tls,
                                 start_tls=True, timeout=10)
        await client.connect()
        await client.login("alice@example.test", "alice-pw")
        errors, reply = await client.send_message(message("alice@example.test", "x@foreign.test"))
        await client.quit()
        return errors, reply
    errors, reply = asyncio.run(go())
    assert errors == {} and reply.startswith("2.0.0 Ok: queued as ")
    [qid] = server.queued()
    assert reply.endswith(qid)


def test_implicit_tls_wrong_password(server, client_tls):
    async def go():
        client = aiosmtplib.SMTP(hostname=HOST, port=server.port("smtps"), tls_context=client_tls,
                                 use_tls=True, timeout=10)
        await client.connect()
        try:
            await client.login("alice@example.test", "nope")
        finally:
            await client.quit()
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
        asyncio.run(go())
    assert failed.value.code == 535 and failed.value.message.startswith("5.7.8")
