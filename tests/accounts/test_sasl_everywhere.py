"""One SASL decoder: the authorization identity is handled the same over SMTP, IMAP and POP3.

An authzid that is empty or names the authenticating account is allowed; any
other is refused (IMAP ignored it before: bob could log in "as" alice's authzid).
Non-UTF-8 user names are a plain failed login with one log line, never a traceback.
"""

from __future__ import annotations

import pytest

from tests.accounts.clients import imap_login_raw, imap_plain, pop3_plain, pop3_raw, smtp_auth
from tests.accounts.conftest import PASSWORD

BOB = "bob@example.test"
ALICE = "alice@example.test"


def _smtp(port, authzid, user):
    return "OK" if smtp_auth(port, user, PASSWORD, authzid)[0] == 235 else "refused"


def _imap(port, authzid, user):
    return "OK" if imap_plain(port, authzid, user, PASSWORD) == "OK" else "refused"


def _pop3(port, authzid, user):
    return "OK" if pop3_plain(port, authzid, user, PASSWORD).startswith("+OK") else "refused"


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3"])
def test_authzid_rule_is_the_same_for_every_protocol(serve, protocol):
    port = getattr(serve.ports, protocol)
    attempt = {"smtp": _smtp, "imap": _imap, "pop3": _pop3}[protocol]
    assert attempt(port, "", BOB) == "OK"
    assert attempt(port, BOB, BOB) == "OK"
    assert attempt(port, "BOB@Example.test", BOB) == "OK"
    assert attempt(port, ALICE, BOB) == "refused"


def test_non_utf8_user_names_fail_cleanly_on_every_protocol(serve):
    ports = serve.ports
    assert b"NO [AUTHENTICATIONFAILED]" in imap_login_raw(ports.imap, b"\xff\xfe@example.test", b"pw")
    assert b"NO [AUTHENTICATIONFAILED]" in imap_login_raw(ports.imap, BOB.encode(), b"\xff")
    user, password = pop3_raw(ports.pop3, b"USER \xff\xfe@example.test", b"PASS pw")
    assert user.startswith(b"-ERR") and password.startswith(b"-ERR")
    assert smtp_auth(ports.smtp, "\udcff@example.test", PASSWORD)[0] in (501, 535)
    assert imap_plain(ports.imap, "", BOB, PASSWORD) == "OK"                  # still serving
    log = serve.log.read_text(errors="replace")
    assert "Traceback" not in log and "UnicodeEncodeError" not in log
    assert sum("imap: failed login" in line for line in log.splitlines()) == 2
