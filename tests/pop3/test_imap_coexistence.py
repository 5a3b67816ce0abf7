"""POP3 and IMAP on the same Maildir: the POP3 lock does not block IMAP; IMAP sees Seen and deletions."""

from __future__ import annotations

import asyncio

import pytest

from tests.pop3.conftest import PASSWORD, USER

imapclient = pytest.importorskip("imapclient")
imap_server = pytest.importorskip("mailpipe.access.imap.server")

MESSAGE = b"From: a@example.org\r\nSubject: both\r\n\r\nshared body\r\n"


@pytest.fixture
def imap(server):
    config = server.config.model_copy(update={"imap": server.config.imap.model_copy(
        update={"port": 0, "tls_port": 0})})
    service = imap_server.ImapService(config, server.directory, server.service.tls)
    asyncio.run_coroutine_threadsafe(service.start(), server.loop).result(10)
    yield service.addresses[0][1]
    asyncio.run_coroutine_threadsafe(service.stop(), server.loop).result(15)


def _imap_client(port: int):
    client = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10)
    client.login(USER, PASSWORD)
    return client


def test_imap_works_during_pop3_session_and_sees_seen_and_deletions(server, imap):
    server.deliver(MESSAGE, "shared1")
    server.deliver(MESSAGE, "shared2")
    pop = server.login()
    mail = _imap_client(imap)
    mail.select_folder("INBOX")
    uids = mail.search("ALL")
    assert len(uids) == 2
    assert all(b"\\Seen" not in flags for flags in mail.get_flags(uids).values())
    pop.retr(1)
    pop.dele(2)
    assert pop.quit().startswith(b"+OK")
    mail.noop()
    mail.unselect_folder()
    mail.select_folder("INBOX")
    remaining = mail.search("ALL")
    assert len(remaining) == 1
    assert b"\\Seen" in mail.get_flags(remaining)[remaining[0]]
    assert mail.fetch(remaining, ["BODY.PEEK[]"])[remaining[0]][b"BODY[]"] == MESSAGE
    mail.logout()
