"""Account changes made with the CLI take effect in a running ``mailpipe serve`` within 2 s.

Issue 16: after ``user del`` the server still accepted the user's IMAP LOGIN,
SMTP AUTH and relay, and after ``user passwd`` the old password (a 300 s cache
that only the CLI's own process cleared). Each check polls with a deadline;
nothing sleeps.
"""

from __future__ import annotations

import time

from mailpipe.mailstore.maildir import ensure_maildir
from tests.accounts.clients import imap_login, pop3_login, smtp_auth, smtp_rcpt
from tests.accounts.conftest import PASSWORD
from tests.support import wait_for

HANK = "hank@example.test"
ALICE = "alice@example.test"
WITHIN = 2.0


def _left(start: float) -> float:
    return max(0.05, start + WITHIN - time.monotonic())


def test_deleted_user_is_refused_everywhere_within_two_seconds(serve):
    ports = serve.ports
    # warm every cache: a verified password, a recipient, a sender
    assert imap_login(ports.imap, HANK, PASSWORD) == "OK"
    assert pop3_login(ports.pop3, HANK, PASSWORD) == "+OK"
    assert smtp_auth(ports.smtp, HANK, PASSWORD)[0] == 235
    assert smtp_rcpt(ports.smtp, HANK)[0] == 250
    assert smtp_rcpt(ports.smtp, "x@foreign.example", HANK, PASSWORD, sender=HANK)[0] == 250

    serve.cli("user", "del", HANK)
    start = time.monotonic()
    wait_for(lambda: smtp_rcpt(ports.smtp, HANK) [0] == 550, _left(start), what="RCPT TO hank -> 550")
    code, text = smtp_rcpt(ports.smtp, HANK)
    assert (code, text[:5]) == (550, b"5.1.1")
    wait_for(lambda: "AUTHENTICATIONFAILED" in imap_login(ports.imap, HANK, PASSWORD), _left(start),
             what="IMAP LOGIN hank -> NO")
    wait_for(lambda: smtp_auth(ports.smtp, HANK, PASSWORD)[0] == 535, _left(start), what="SMTP AUTH hank -> 535")
    wait_for(lambda: pop3_login(ports.pop3, HANK, PASSWORD).startswith("-ERR [AUTH]"), _left(start),
             what="POP3 PASS hank -> -ERR")
    wait_for(lambda: smtp_rcpt(ports.smtp, "x@foreign.example", HANK, PASSWORD, sender=HANK)[0] == 535,
             _left(start), what="hank cannot relay")
    assert time.monotonic() - start <= WITHIN + 0.5


def test_old_password_fails_and_new_alias_works_within_two_seconds(serve):
    ports = serve.ports
    assert imap_login(ports.imap, ALICE, PASSWORD) == "OK"
    assert smtp_auth(ports.smtp, ALICE, PASSWORD)[0] == 235
    assert smtp_rcpt(ports.smtp, "team@example.test")[0] == 550        # a cached "no such user"

    serve.cli("user", "passwd", ALICE, "--password-stdin", input=b"n3w-secret\n")
    serve.cli("alias", "add", "team@example.test", ALICE)
    start = time.monotonic()
    wait_for(lambda: smtp_rcpt(ports.smtp, "team@example.test")[0] == 250, _left(start),
             what="new alias accepted")
    wait_for(lambda: "AUTHENTICATIONFAILED" in imap_login(ports.imap, ALICE, PASSWORD), _left(start),
             what="IMAP LOGIN with the old password -> NO")
    wait_for(lambda: smtp_auth(ports.smtp, ALICE, PASSWORD)[0] == 535, _left(start),
             what="SMTP AUTH with the old password -> 535")
    assert imap_login(ports.imap, ALICE, "n3w-secret") == "OK"
    assert pop3_login(ports.pop3, ALICE, "n3w-secret") == "+OK"


def test_domain_del_asks_counts_and_keeps_mailboxes(serve):
    ensure_maildir(serve.maildir(ALICE))
    listing = serve.cli("domain", "del", "example.test", input=b"n\n", check=False)
    out = listing.stdout.decode()
    assert listing.returncode != 0 and "3 users (1 mailboxes on disk)" in out and "stay on disk" in out
    assert serve.cli("user", "list").stdout.decode().count("@example.test") == 3     # nothing removed
    done = serve.cli("domain", "del", "example.test", "--yes").stdout.decode()
    assert "deleted with 3 users" in done and "(1 mailboxes kept on disk)" in done
    assert serve.maildir(ALICE).is_dir()
    start = time.monotonic()
    wait_for(lambda: smtp_rcpt(serve.ports.smtp, ALICE)[0] == 554, _left(start),
             what="the domain is no longer local (relay denied)")
