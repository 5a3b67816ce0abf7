"""Flow control through the real brokers: the smtp_in backlog probe, and ``mailpipe serve``
pausing new messages while its (stopped) worker is behind, then delivering every one once."""

from __future__ import annotations

import os
import signal
import smtplib

import pytest

from mailpipe.ingress.flow import FlowGate
from mailpipe.core.config import Config
from mailpipe.broker import open_broker
from tests.support import ServeProcess, add_accounts, wait_for
from mailpipe.workers.app import create_app, publish_many


def test_the_probe_counts_ready_batches_on_smtp_in(tmp_path, broker_url):
    config = Config(data_dir=tmp_path / "data", broker_url=broker_url, queue_prefix="mptest-probe.")
    probe = open_broker(config).backlog_probe()
    app = create_app(config)
    try:
        publish_many(app, "smtp_in", ["A1", "A2"])       # one broker message: one batch
        publish_many(app, "smtp_in", ["B1"])
        publish_many(app, "remote", ["C1"])               # another stage's queue: not counted
        wait_for(lambda: probe() == 2, 10, what="two ready batches")
        gate = FlowGate(probe, limit=1, delay=1.0)
        gate.poll_once()
        assert gate.backlog == 2 and gate.congested
    finally:
        probe.close()


def test_a_probe_that_cannot_reach_the_broker_reads_none(tmp_path):
    config = Config(data_dir=tmp_path / "data", broker_url="amqp://guest:guest@127.0.0.1:1/none")
    assert open_broker(config).backlog_probe()() is None


USERS = ["alice"]


@pytest.mark.slow
def test_serve_pauses_new_messages_while_its_worker_is_stopped(tmp_path, broker_url):
    srv = ServeProcess(tmp_path, broker_url=broker_url, ingress_toml="in_flow_backlog = 1\nin_flow_delay = 0.5\n",
                       extra_toml="[worker]\nconcurrency = 1\n")
    add_accounts(srv.data_dir, "example.test", USERS)
    srv.start()
    workers: list[int] = []
    try:
        # serve starts its worker after the SMTP port opens: wait for the child, not the port
        workers = wait_for(srv.worker_pids, 30, what="serve's worker process")
        assert workers
        wait_for(lambda: b"ready" in srv.log.read_bytes() or b"celery@" in srv.log.read_bytes(), 30,
                 what="the worker to start")
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as smtp:
            for i in range(5):      # the stopped worker holds at most one; the rest wait on smtp_in
                smtp.sendmail("x@remote.test", ["alice@example.test"],
                              f"Subject: flow {i}\r\nMessage-ID: <flow-{i}@remote.test>\r\n\r\nhi\r\n".encode())
        wait_for(lambda: b"pausing new messages" in srv.log.read_bytes(), 15, what="flow control to engage")
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    try:
        wait_for(lambda: len(srv.delivered("alice@example.test")) == 5, 60, what="all five delivered")
        wait_for(lambda: b"resuming new messages" in srv.log.read_bytes(), 15, what="flow control to release")
        assert len(srv.delivered("alice@example.test")) == 5
    finally:
        srv.stop()


def test_a_queue_not_declared_yet_counts_zero_on_the_same_connection(tmp_path, broker_url):
    config = Config(data_dir=tmp_path / "data", broker_url=broker_url, queue_prefix="mptest-undeclared.")
    probe = open_broker(config).backlog_probe()
    try:
        assert probe() == 0
        conn = getattr(probe, "_conn", None)             # the embedded broker's probe has none
        assert probe() == 0 and getattr(probe, "_conn", None) is conn      # no reconnect per poll
    finally:
        probe.close()
