"""Group commit: queue IDs accepted together share one broker message; a worker runs them all.

These tests use the real brokers and a real ``mailpipe worker`` process; the
batching at the ingress (``ingress.committer``) is tested in
``tests/ingress/test_committer.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mailpipe.core.ids import new_queue_id
from mailpipe.core.config import load
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry, Recipient
from tests.support import ServeProcess, add_accounts, wait_for
from mailpipe.workers.app import create_app, publish_many


# -- batches through the real brokers and a real worker process ---------------------------------

USERS = ["alice", "bob", "carol"]


def spool_three(srv: ServeProcess) -> list[str]:
    spool = FilesystemSpool(srv.data_dir / "spool")
    ids = []
    for user in USERS:
        entry = Entry(id=new_queue_id(), sender="x@remote.test",
                      recipients=[Recipient(address=f"{user}@example.test")], size=0, received_at=time.time())
        body = f"Subject: batch for {user}\r\nMessage-ID: <{entry.id}@remote.test>\r\n\r\nhi\r\n".encode()
        entry.size = len(body)
        spool.create(entry, [body])
        ids.append(entry.id)
    return ids


def start_worker(srv: ServeProcess) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    return subprocess.Popen([sys.executable, "-m", "mailpipe.ops", "--config", str(srv.config), "--data-dir",
                             str(srv.data_dir), "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def delivered_once(srv: ServeProcess) -> bool:
    counts = [len(srv.delivered(f"{u}@example.test")) for u in USERS]
    assert max(counts) <= 1, counts
    return counts == [1, 1, 1]


@pytest.mark.slow
def test_a_batch_message_delivers_each_id_and_a_redelivered_batch_is_split(tmp_path, broker_url):
    srv = ServeProcess(tmp_path, broker_url=broker_url)
    add_accounts(srv.data_dir, "example.test", USERS)
    app = create_app(load(srv.config, data_dir=srv.data_dir))
    ids = spool_three(srv)
    publish_many(app, "smtp_in", ids)
    status = json.loads(srv.cli("queue", "status", "--json").stdout)
    assert {q["stage"]: q["depth"] for q in status["queues"]}["smtp_in"] == 1   # three IDs, one message
    worker = start_worker(srv)
    try:
        wait_for(lambda: delivered_once(srv), 60, what="three deliveries from one batch")
        for user in USERS:
            (path,) = srv.delivered(f"{user}@example.test")
            path.unlink()
        again = spool_three(srv)
        publish_many(app, "smtp_in", again, redelivered=True)    # as a worker killed mid-batch leaves it
        wait_for(lambda: delivered_once(srv), 60, what="three deliveries after the split")
        spool = FilesystemSpool(srv.data_dir / "spool")

        def finished_after_redelivery(qid: str) -> bool:
            events = [e.event for e in spool.load(qid).trace]
            return "redelivered" in events and events[-1] == "done"
        # the Maildir file exists before the worker saves the finished entry: wait for that too
        wait_for(lambda: all(finished_after_redelivery(qid) for qid in again), 30,
                 what="finished entries that recorded their redelivery")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
