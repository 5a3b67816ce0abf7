"""Per-mail-host delivery queues with real processes on RabbitMQ (issue 18 item 2).

A front host (``mailpipe serve``: ingress, filters, route, the default mail
host's local stage, the scheduler) and two mail hosts (``mailpipe worker
--stages local --mail-host mh1|mh2``), each with its own data directory for
mail, sharing only the broker (a vhost of its own), the spool folder
(``spool_url``) and the account database (``database_url``). Every message must
land once, only under the data directory of its recipient's mail host; a mail
host that is not running holds only its own users' mail (in ``local.<host>``,
visible in ``queue status``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.spine.conftest import broker_for
from tests.support import ServeProcess, fast_directory, wait_for

pytestmark = pytest.mark.slow

DOMAIN = "example.test"
HOSTS = {"alice": None, "bob": "mh1", "carol": "mh2", "dave": "mh2"}   #: user -> mail host


@pytest.fixture
def rabbit_url():
    yield from broker_for("rabbitmq")


class Cluster:
    """The front ``serve`` plus one ``worker`` process per started mail host."""

    def __init__(self, tmp: Path, broker_url: str) -> None:
        self.tmp = tmp
        shared = tmp / "shared"
        shared.mkdir()
        self.common = (f'broker_url = "{broker_url}"\nhostname = "mx.example.test"\n'
                       f'spool_url = "file://{shared / "spool"}"\n'
                       f'database_url = "sqlite:///{shared / "mailpipe.db"}"\n')
        cluster = '[cluster]\nmail_hosts = ["mh1", "mh2"]\n'
        (tmp / "front").mkdir()
        self.front = ServeProcess(tmp / "front", extra_toml=cluster)
        self.front.config.write_text(self.common + self.front.config.read_text().split("\n", 2)[2])
        self.workers: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    def data_dir(self, host: str | None) -> Path:
        return self.front.data_dir if host is None else self.tmp / host / "data"

    def add_users(self) -> None:
        directory = fast_directory(self.tmp / "shared")        # the shared mailpipe.db
        directory.add_domain(DOMAIN)
        for user, host in HOSTS.items():
            directory.add_user(f"{user}@{DOMAIN}", "pw", mail_host=host)
        directory.add_alias(f"team@{DOMAIN}", f"bob@{DOMAIN}")
        directory.add_alias(f"team@{DOMAIN}", f"carol@{DOMAIN}")
        directory.close()

    def start_mail_host(self, host: str) -> None:
        config = self.tmp / host / "mailpipe.toml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(self.common + '[metrics]\nenabled = false\n'
                          f'[cluster]\nmail_hosts = ["mh1", "mh2"]\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
        log = open(self.tmp / host / "worker.log", "ab")
        self._logs.append(log)
        self.workers[host] = subprocess.Popen(
            [sys.executable, "-m", "mailpipe.ops", "--config", str(config), "--data-dir", str(self.data_dir(host)),
             "worker", "--stages", "local", "--mail-host", host, "-c", "2", "--name", f"mailhost-{host}"],
            stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        for proc in self.workers.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.front.stop()
        for log in self._logs:
            log.close()

    def found(self) -> dict[tuple[str, str], list[str]]:
        """(data dir owner, user) -> Message-IDs in that user's Maildir under that data dir."""
        result: dict[tuple[str, str], list[str]] = {}
        for owner in ("front", "mh1", "mh2"):
            data = self.data_dir(None if owner == "front" else owner)
            for user in HOSTS:
                root = data / "mail" / DOMAIN / user / "Maildir"
                for sub in ("new", "cur"):
                    for path in sorted((root / sub).iterdir()) if (root / sub).is_dir() else []:
                        match = re.search(rb"Message-ID: <([^>]+)>", path.read_bytes())
                        result.setdefault((owner, user), []).append(match.group(1).decode() if match else "?")
        return result

    def spool_active(self) -> int:
        return json.loads(self.front.cli("queue", "status", "--json").stdout)["spool"]["active"]

    def depths(self) -> dict[str, int | None]:
        status = json.loads(self.front.cli("queue", "status", "--json").stdout)
        return {q["stage"]: q["depth"] for q in status["queues"]}


def send(port: int, mid: str, rcpts: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("sender@remote.test", [f"{r}@{DOMAIN}" for r in rcpts],
                      f"Message-ID: <{mid}>\r\nSubject: {mid}\r\n\r\nbody\r\n".encode())


def expected(messages: dict[str, list[str]]) -> dict[tuple[str, str], list[str]]:
    result: dict[tuple[str, str], list[str]] = {}
    for mid, rcpts in messages.items():
        users = {u for r in rcpts for u in (["bob", "carol"] if r == "team" else [r])}
        for user in users:
            result.setdefault((HOSTS[user] or "front", user), []).append(mid)
    return {k: sorted(v) for k, v in result.items()}


def test_each_recipient_is_delivered_once_by_its_own_mail_host(tmp_path, rabbit_url):
    cluster = Cluster(tmp_path, rabbit_url)
    cluster.add_users()
    messages = {"m-alice": ["alice"], "m-bob": ["bob"], "m-carol": ["carol"], "m-both": ["bob", "carol"],
                "m-three": ["carol", "alice", "dave", "bob"], "m-team": ["team"], "m-team-bob": ["team", "bob"]}
    try:
        cluster.front.start()
        cluster.start_mail_host("mh1")
        cluster.start_mail_host("mh2")
        for mid, rcpts in messages.items():
            send(cluster.front.smtp_port, mid, rcpts)
        want = expected(messages)
        total = sum(len(v) for v in want.values())
        wait_for(lambda: sum(len(v) for v in cluster.found().values()) >= total, 90, interval=0.2,
                 what=f"{total} deliveries")
        got = {k: sorted(v) for k, v in cluster.found().items()}
        assert got == want
        wait_for(lambda: cluster.spool_active() == 0, 30, what="every spool entry finished")
    finally:
        cluster.stop()


def test_a_stopped_mail_host_holds_only_its_own_users_mail(tmp_path, rabbit_url):
    cluster = Cluster(tmp_path, rabbit_url)
    cluster.add_users()
    try:
        cluster.front.start()
        cluster.start_mail_host("mh1")                  # mh2 is down
        send(cluster.front.smtp_port, "w-carol", ["carol"])
        send(cluster.front.smtp_port, "w-bob", ["bob"])
        send(cluster.front.smtp_port, "w-alice", ["alice"])
        send(cluster.front.smtp_port, "w-both", ["bob", "carol"])
        wait_for(lambda: len(cluster.found()) == 2 and len(cluster.found().get(("mh1", "bob"), [])) == 2, 60,
                 interval=0.2, what="bob's and alice's mail")
        wait_for(lambda: cluster.depths().get("local.mh2") == 2, 30, what="two messages waiting in local.mh2")
        depths = cluster.depths()
        assert depths["local.mh1"] == 0 and depths["local"] == 0
        assert ("mh2", "carol") not in cluster.found()
        cluster.start_mail_host("mh2")
        wait_for(lambda: len(cluster.found().get(("mh2", "carol"), [])) == 2, 60, interval=0.2,
                 what="carol's mail after mh2 started")
        assert {k: sorted(v) for k, v in cluster.found().items()} == {
            ("front", "alice"): ["w-alice"], ("mh1", "bob"): ["w-bob", "w-both"],
            ("mh2", "carol"): ["w-both", "w-carol"]}
    finally:
        cluster.stop()
