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

HANK = "hank@example.test"
ALICE = "alice@example.test"
WITHIN = 2.0


def refused_within(check, start: float, what: str) -> None:
    """Poll `check` until it is true; the attempt that saw it must have begun within WITHIN of
    `start` (an attempt itself may be slow on a loaded machine: a failed login pays the argon2
    cost). Bounded in time and count."""
    for _ in range(200):
        begun = time.monotonic()
        if check():
            assert begun - start <= WITHIN, f"{what}: first seen {begun - start:.2f}s after the change"
            return
        assert begun - start <= WITHIN + 10, f"{what}: not seen after {begun - start:.2f}s"
        time.sleep(0.05)            # poll interval between attempts, not waiting for time to pass
    raise AssertionError(f"{what}: not seen")


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
    refused_within(lambda: smtp_rcpt(ports.smtp, HANK)[0] == 550, start, "RCPT TO hank -> 550")
    # the process has seen the change: everything else is refused at the first attempt
    code, text = smtp_rcpt(ports.smtp, HANK)
    assert (code, text[:5]) == (550, b"5.1.1")
    assert "AUTHENTICATIONFAILED" in imap_login(ports.imap, HANK, PASSWORD)
    assert smtp_auth(ports.smtp, HANK, PASSWORD)[0] == 535
    assert pop3_login(ports.pop3, HANK, PASSWORD).startswith("-ERR [AUTH]")
    assert smtp_rcpt(ports.smtp, "x@foreign.example", HANK, PASSWORD, sender=HANK)[0] == 535   # no relay
    assert smtp_rcpt(ports.smtp, "x@foreign.example", sender=HANK)[0] == 554


def test_old_password_fails_and_new_alias_works_within_two_seconds(serve):
    ports = serve.ports
    assert imap_login(ports.imap, ALICE, PASSWORD) == "OK"
    assert smtp_auth(ports.smtp, ALICE, PASSWORD)[0] == 235
    assert smtp_rcpt(ports.smtp, "team@example.test")[0] == 550        # a cached "no such user"

    serve.cli("user", "passwd", ALICE, "--password-stdin", input=b"n3w-secret\n")
    serve.cli("alias", "add", "team@example.test", ALICE)
    start = time.monotonic()
    refused_within(lambda: smtp_rcpt(ports.smtp, "team@example.test")[0] == 250, start, "new alias accepted")
    assert "AUTHENTICATIONFAILED" in imap_login(ports.imap, ALICE, PASSWORD)      # the old password
    assert smtp_auth(ports.smtp, ALICE, PASSWORD)[0] == 535
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
    refused_within(lambda: smtp_rcpt(serve.ports.smtp, ALICE)[0] == 554, start,
                   "the domain is no longer local (relay denied)")
