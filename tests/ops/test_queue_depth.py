"""``queue status --json`` against real roles: messages held back by a stopped stage worker show as depth.

Embedded broker: ``mailpipe ingress`` + ``mailpipe worker --stages smtp_in`` only, so accepted mail
piles up in the antivirus queue. RabbitMQ: every role as its own process (ingress, one worker per
stage, scheduler); the spam worker is stopped, its queue grows, and drains when it starts again.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.ops import procs
from tests.ops.test_serve_metrics import scrape
from tests.ops.conftest import USER, add_accounts

STAGES = ("smtp_in", "antivirus", "spam", "rules", "route", "local", "remote")
NO_METRICS = {"MAILPIPE_METRICS__ENABLED": "false"}


class Roles:
    """Role processes of one test, each with its own log; all stopped at the end."""

    def __init__(self, root, broker_url: str | None = None) -> None:
        self.root = root
        self.config, self.data_dir = root / "mailpipe.toml", root / "data"
        self.ports = procs.write_config(self.config, self.data_dir, broker_url=broker_url)
        add_accounts(self.config)
        self.running: dict[str, object] = {}

    def start(self, name: str, *args: str, metrics: bool = False, env: dict | None = None) -> None:
        log = self.root / f"{name}.log"
        self.running[name] = procs.start(self.config, *args, log=log, env=env or (None if metrics else NO_METRICS))

    def start_worker(self, stages: str, env: dict | None = None) -> None:
        self.start(f"worker-{stages}", "worker", "--stages", stages, "-c", "2", "--name", f"w-{stages}", env=env)

    def stop(self, name: str) -> None:
        procs.stop(self.running.pop(name))

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_ingress(self) -> None:
        """The ingress alone serves its own metrics on the configured port."""
        self.start("ingress", "ingress", metrics=True)
        procs.wait_for(lambda: "listening on" in self.log("ingress") and procs.port_open(self.ports["metrics.port"]),
                       60, "ingress listening")

    def status(self) -> dict:
        return procs.status_json(self.config)


def test_embedded_depth_counts_messages_held_back_by_a_stopped_stage(tmp_path):
    roles = Roles(tmp_path)
    try:
        roles.start_ingress()
        roles.start_worker("smtp_in")
        procs.send(roles.ports["ingress.smtp_port"], 5, rcpt=USER)
        snap = procs.wait_for(lambda: (s := roles.status()) and procs.depth(s, "antivirus") == 5 and s,
                              60, "5 messages waiting in the antivirus queue")
        assert [q["stage"] for q in snap["queues"]] == list(STAGES)
        assert procs.depth(snap, "smtp_in") == 0
        assert all(procs.depth(snap, s) == 0 for s in STAGES[2:])
        assert snap["spool"]["active"] == 5
        antivirus = next(q for q in snap["queues"] if q["stage"] == "antivirus")
        assert antivirus["unacked"] == 0
        assert procs.maildir_count(roles.data_dir) == 0
        own = scrape(roles.ports["metrics.port"])          # the standalone ingress's own endpoint
        assert own["mailpipe_ingress_accepted_total"] == 5
        assert own['mailpipe_queue_published_total{queue="smtp_in"}'] == 5
        assert "mailpipe_queue_depth" not in " ".join(own)  # system gauges only on scheduler/serve
        watch = procs.mailpipe(roles.config, "queue", "status", "--watch", "--count", "1", "--interval", "0.2",
                               env={"COLUMNS": "120"})
        assert watch.returncode == 0, watch.stderr
        assert "in/s" in watch.stdout and "oldest deferred" in watch.stdout and "destinations" in watch.stdout
        # depth 5, unacked 0, consumers unknown (embedded), in/out from the ingress's counters: 0 while idle
        row = r"antivirus\s+\W\s+antivirus\s+\W\s+5\s+\W\s+0\s+\W\s+-\s+\W\s+0\.0\s+\W\s+0\.0\s+\W"
        assert re.search(row, watch.stdout), watch.stdout
        waiting = json.loads(procs.mailpipe(roles.config, "queue", "list", "--json").stdout)[0]["id"]
        in_flight = procs.mailpipe(roles.config, "trace", waiting)
        assert in_flight.returncode == 0, in_flight.stderr
        assert re.search(r"\ssmtp_in\s+accepted\s", in_flight.stdout), in_flight.stdout
        assert in_flight.stdout.rstrip().endswith("final     in flight: waiting for or running stage antivirus")
        roles.start_worker("antivirus,spam,rules,route,local,remote")
        procs.wait_for(lambda: procs.maildir_count(roles.data_dir) == 5, 60, "the held mail delivered")
        assert procs.depth(roles.status(), "antivirus") == 0
        procs.wait_for(lambda: (roles.data_dir / "spool").exists() and
                       json.loads(procs.mailpipe(roles.config, "queue", "list", "--json").stdout) == [],
                       30, "every entry finished")
        delivered = procs.mailpipe(roles.config, "trace", waiting, "--json")
        assert json.loads(delivered.stdout)["stages"] == ["ingress", "smtp_in", "antivirus", "spam", "rules",
                                                          "route", "local"]
    finally:
        roles.stop_all()


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_rabbitmq_every_role_apart_spam_queue_grows_and_drains(tmp_path, rabbit_vhost):
    roles = Roles(tmp_path, broker_url=rabbit_vhost)
    try:
        roles.start_ingress()
        scheduler_port = procs.free_port()       # the scheduler's own endpoint carries the queue gauges
        roles.start("scheduler", "scheduler", env={"MAILPIPE_METRICS__PORT": str(scheduler_port)})
        for stage in STAGES:
            roles.start_worker(stage)
        procs.wait_for(lambda: all(q["consumers"] == 1 for q in roles.status()["queues"]), 90,
                       "one consumer on every stage queue")
        procs.send(roles.ports["ingress.smtp_port"], 3, rcpt=USER)
        procs.wait_for(lambda: procs.maildir_count(roles.data_dir) == 3, 60, "3 delivered through every role")

        roles.stop("worker-spam")
        procs.wait_for(lambda: next(q for q in roles.status()["queues"] if q["stage"] == "spam")["consumers"] == 0,
                       60, "the spam worker gone")
        procs.send(roles.ports["ingress.smtp_port"], 4, rcpt=USER)
        snap = procs.wait_for(lambda: (s := roles.status()) and procs.depth(s, "spam") == 4 and s,
                              60, "4 messages waiting in the spam queue")
        assert procs.depth(snap, "smtp_in") == 0 and procs.depth(snap, "antivirus") == 0
        assert procs.maildir_count(roles.data_dir) == 3
        gauges = scrape(scheduler_port)
        assert gauges['mailpipe_queue_depth{queue="spam",stage="spam"}'] == 4
        assert gauges['mailpipe_queue_consumers{queue="spam",stage="spam"}'] == 0
        assert gauges['mailpipe_queue_consumers{queue="rules",stage="rules"}'] == 1
        assert gauges['mailpipe_spool_messages{state="active"}'] == 4

        roles.start_worker("spam")
        procs.wait_for(lambda: procs.maildir_count(roles.data_dir) == 7, 60, "the spam queue drained")
        assert procs.depth(roles.status(), "spam") == 0
    finally:
        roles.stop_all()


@pytest.mark.rabbitmq
def test_rabbitmq_depth_with_only_the_smtp_in_worker(tmp_path, rabbit_vhost):
    roles = Roles(tmp_path, broker_url=rabbit_vhost)
    try:
        roles.start_ingress()
        worker_port = procs.free_port()          # a standalone worker serves its own counters
        roles.start_worker("smtp_in", env={"MAILPIPE_METRICS__PORT": str(worker_port)})
        procs.wait_for(lambda: next(q for q in roles.status()["queues"] if q["stage"] == "smtp_in")["consumers"] == 1,
                       90, "the smtp_in worker consuming")
        procs.send(roles.ports["ingress.smtp_port"], 5, rcpt=USER)
        snap = procs.wait_for(lambda: (s := roles.status()) and procs.depth(s, "antivirus") == 5 and s,
                              60, "5 messages waiting in the antivirus queue")
        assert [q["stage"] for q in snap["queues"]] == list(STAGES)
        assert procs.depth(snap, "smtp_in") == 0
        assert next(q for q in snap["queues"] if q["stage"] == "antivirus")["consumers"] == 0
        own = scrape(worker_port)
        assert own['mailpipe_stage_processed_total{stage="smtp_in"}'] == 5
        assert own['mailpipe_queue_published_total{queue="antivirus"}'] == 5
    finally:
        roles.stop_all()
