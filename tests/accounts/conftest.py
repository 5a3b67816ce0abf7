"""A real ``mailpipe serve`` per test (SMTP, IMAP, POP3 in one process) with alice, bob and hank.

Accounts are added with a cheap argon2 cost; failed-login delays are off
(``failure_delay_cap = 0``) so that the limiter's counts, not its waits, are
what the tests see.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

import pytest

from tests.support import ServeProcess, add_accounts, port_open, wait_for

DOMAIN = "example.test"
PASSWORD = "pw"
MAX_FAILURES = 5


@dataclass
class Ports:
    smtp: int
    imap: int
    pop3: int


@pytest.fixture
def serve(tmp_path):
    process = ServeProcess(tmp_path, extra_toml=f"[auth]\nmax_failures = {MAX_FAILURES}\nfailure_delay_cap = 0\n",
                           ingress_toml="greet_pause = 0\nmax_connections_per_ip = 100\n")
    add_accounts(process.data_dir, DOMAIN, ["alice", "bob", "hank"])
    process.start()
    config = tomllib.loads(process.config.read_text())
    process.ports = Ports(process.smtp_port, config["imap"]["port"], config["pop3"]["port"])
    wait_for(lambda: port_open(process.ports.imap) and port_open(process.ports.pop3), 30, what="imap/pop3 ports")
    yield process
    process.stop()
