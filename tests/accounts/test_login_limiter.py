"""One login limiter per process, shared by SMTP, IMAP and POP3 (issue 17 item 1), on real sockets.

Before: a success removed the client's whole record (four wrong passwords for
alice, then a good login as bob, repeated, never locked), each protocol had its
own limiter, and the lock was checked and counted in two steps (parallel logins
all got checked before the lock).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.accounts.clients import imap_login, pop3_login, smtp_auth
from tests.accounts.conftest import MAX_FAILURES, PASSWORD

ALICE = "alice@example.test"
BOB = "bob@example.test"
BURST = 40


def _smtp(port: int, user: str, password: str) -> str:
    code = smtp_auth(port, user, password)[0]
    return {235: "ok", 535: "failed", 454: "locked"}.get(code, f"smtp {code}")


def _imap(port: int, user: str, password: str) -> str:
    answer = imap_login(port, user, password)
    if answer == "OK":
        return "ok"
    return "failed" if "AUTHENTICATIONFAILED" in answer else "locked" if "UNAVAILABLE" in answer else answer


def _pop3(port: int, user: str, password: str) -> str:
    answer = pop3_login(port, user, password)
    if answer.startswith("+OK"):
        return "ok"
    return "failed" if "[AUTH]" in answer else "locked" if "[LOGIN-DELAY]" in answer else answer


LOGIN = {"smtp": _smtp, "imap": _imap, "pop3": _pop3}


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3"])
def test_a_good_login_as_bob_does_not_clear_the_failures_against_alice(serve, protocol):
    port, login = getattr(serve.ports, protocol), LOGIN[protocol]
    answers = []
    for _round in range(4):                      # 16 wrong guesses for alice in all
        answers += [login(port, ALICE, "guess") for _ in range(4)]
        login(port, BOB, PASSWORD)
    assert answers.count("failed") <= MAX_FAILURES, answers
    assert login(port, ALICE, PASSWORD) == "locked"


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3"])
def test_a_parallel_burst_gets_no_more_checks_than_the_limit(serve, protocol):
    port, login = getattr(serve.ports, protocol), LOGIN[protocol]
    # alice's hash at the production argon2 cost: each check takes long enough to overlap
    serve.cli("user", "passwd", ALICE, "--password-stdin", input=PASSWORD.encode())
    start = threading.Barrier(BURST)

    def attempt(_i: int) -> str:
        start.wait(30)
        return login(port, ALICE, "guess")

    with ThreadPoolExecutor(BURST) as pool:
        answers = list(pool.map(attempt, range(BURST)))
    assert answers.count("failed") <= MAX_FAILURES, answers
    assert answers.count("failed") + answers.count("locked") == BURST, answers
    assert login(port, ALICE, PASSWORD) == "locked"


def test_failures_over_one_protocol_lock_the_others(serve):
    ports = serve.ports
    assert [_smtp(ports.smtp, ALICE, "guess") for _ in range(MAX_FAILURES)] == ["failed"] * MAX_FAILURES
    assert _imap(ports.imap, ALICE, PASSWORD) == "locked"
    assert _pop3(ports.pop3, ALICE, PASSWORD) == "locked"
    assert _smtp(ports.smtp, ALICE, PASSWORD) == "locked"
