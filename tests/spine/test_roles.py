"""Roles as separate processes: `mailpipe ingress` alone queues mail; the stock `celery -A` command delivers it."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys

import pytest

from tests.support import ServeProcess, add_accounts, port_open, wait_for

pytestmark = pytest.mark.slow


def test_ingress_alone_queues_then_stock_celery_worker_delivers(tmp_path):
    srv = ServeProcess(tmp_path)            # used for its config file and helpers; not started as `serve`
    add_accounts(srv.data_dir, "example.test", ["alice"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update(MAILPIPE_CONFIG=str(srv.config), MAILPIPE_DATA_DIR=str(srv.data_dir))
    ingress = subprocess.Popen([sys.executable, "-m", "mailpipe.ops", "ingress"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        wait_for(lambda: port_open(srv.smtp_port), 30, what="ingress port")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as smtp:
            smtp.sendmail("bob@remote.test", ["alice@example.test"], b"Subject: queued\r\n\r\nwaits\r\n")
        status = json.loads(srv.cli("queue", "status", "--json").stdout)
        depth = {q["stage"]: q["depth"] for q in status["queues"]}
        assert depth["smtp_in"] == 1 and status["spool"]["active"] == 1
        assert srv.delivered("alice@example.test") == []
        queues = "smtp_in,antivirus,spam,rules,route,local,remote"
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "mailpipe.workers.celery_app", "worker", "-Q", queues,
                                   "-P", "threads", "-c", "2", "--without-mingle", "--without-gossip",
                                   "--without-heartbeat", "-l", "WARNING"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        files = wait_for(lambda: srv.delivered("alice@example.test"), 60, what="delivery by the celery worker")
        assert len(files) == 1 and b"Subject: queued" in files[0].read_bytes()
    finally:
        for proc in (worker, ingress):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
