"""`mailpipe serve` and its children (issue 17 items 6, 9, 15), with real processes.

- ``kill -9`` of serve takes its worker and ingress children with it (PR_SET_PDEATHSIG);
- a child an earlier serve left running (recorded in DATA/run/children) is ended by the
  next serve of that data directory, which then delivers mail;
- the serve log starts clean: no Celery banner, no Celery root warning about ``--uid``,
  no kombu "No hostname was supplied", the filter hint without a typo, one root warning
  naming ``[process] user``, the descriptor limit; a port probe is not an early talker.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailpipe.core import procs
from tests.support import ServeProcess, add_accounts, wait_for

pytestmark = pytest.mark.slow


def gone(pid: int) -> bool:
    """Ended (a zombie waiting for an absent reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def send(server: ServeProcess, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.sendmail("bob@remote.test", ["alice@example.test"], f"Subject: {subject}\r\n\r\nhi\r\n")


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_kill_9_of_serve_takes_its_children_with_it(tmp_path):
    server = ServeProcess(tmp_path, ingress_toml="processes = 2\n")      # a worker and an ingress child
    add_accounts(server.data_dir, "example.test", ["alice"])
    server.start()
    children: list[int] = []
    try:
        children = wait_for(lambda: len(children_of(server.proc.pid)) >= 2 and children_of(server.proc.pid),
                            30, what="worker and ingress children")
        send(server, "before")                    # the worker is up and working (slow under load)
        wait_for(lambda: len(server.delivered("alice@example.test")) == 1, 90, what="a delivery")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        wait_for(lambda: all(gone(pid) for pid in children), 30, what=f"children {children} to end")
    finally:
        server.stop()
        for pid in children:                  # without the fix they outlive serve: end them here
            if not gone(pid) and str(tmp_path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_next_serve_ends_a_child_an_earlier_serve_left_running(tmp_path):
    server = ServeProcess(tmp_path)
    add_accounts(server.data_dir, "example.test", ["alice"])
    argv = [sys.executable, "-P", "-m", "mailpipe.ops", "--config", str(server.config),
            "--data-dir", str(server.data_dir), "worker", "--stages", "all"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    stale = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        wait_for(lambda: procs.start_time(stale.pid), 10, what="the stale worker")
        dead_parent = subprocess.Popen(["true"])
        dead_parent.wait()
        record = procs.ChildRecord(stale.pid, procs.start_time(stale.pid) or 0, argv, dead_parent.pid, 1)
        record.write(server.data_dir / "run" / "children" / "worker-0.pid")
        server.start()
        try:
            wait_for(lambda: stale.poll() is not None, 40, what="the stale worker to be ended")
            assert f"ended pid {stale.pid}" in server.log.read_text()
            send(server, "after")
            wait_for(lambda: len(server.delivered("alice@example.test")) == 1, 30, what="a delivery")
        finally:
            server.stop()
    finally:
        if stale.poll() is None:
            stale.kill()
        stale.wait(10)


def test_a_record_of_another_process_is_left_alone(tmp_path):
    """A pid the kernel gave to another program since: different start time or command line."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        wait_for(lambda: procs.start_time(bystander.pid), 10, what="the bystander")
        record = procs.ChildRecord(bystander.pid, procs.start_time(bystander.pid) or 0,
                                   [sys.executable, "-P", "-m", "mailpipe.ops", "worker"], 999999999, 1)
        record.write(tmp_path / "worker-0.pid")
        procs.ChildRecord(bystander.pid, 1, bystander.args, 999999999, 1).write(tmp_path / "worker-1.pid")
        assert procs.end_stale(tmp_path, timeout=5) == []
        assert bystander.poll() is None and not list(tmp_path.glob("*.pid"))
    finally:
        bystander.kill()
        bystander.wait()


def test_serve_log_starts_clean_and_a_port_probe_is_not_an_early_talker(tmp_path):
    server = ServeProcess(tmp_path)           # greet_pause: the default 0.5 s
    add_accounts(server.data_dir, "example.test", ["alice"])
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.smtp_port), timeout=5):
            pass                                              # a port probe: connect, close, no word
        send(server, "hello")
        wait_for(lambda: len(server.delivered("alice@example.test")) == 1, 30, what="a delivery")
    finally:
        server.stop()
    log = server.log.read_text()
    assert "celery@" not in log and "-------------- " not in log          # Celery's banner
    assert "SecurityWarning" not in log and "--uid" not in log
    assert "No hostname was supplied" not in log
    assert "(set [antivirus] clamd to enable)" in log and "clamd]" not in log
    assert "early talker" not in log
    assert "descriptor limit: " in log
    if os.geteuid() == 0:
        assert log.count("[process] user") == 1, log


@pytest.mark.rabbitmq
def test_serve_restarted_after_kill_9_on_rabbitmq_runs_one_worker_that_stays(tmp_path):
    """The orphan used to hold the node's pidbox queue: the new worker exited every ~2 s
    with ``405 RESOURCE_LOCKED`` until the orphan was killed by hand."""
    from tests.support import drop_vhost, rabbitmq_vhost
    vhost = rabbitmq_vhost()
    server = ServeProcess(tmp_path, broker_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    add_accounts(server.data_dir, "example.test", ["alice"])
    children: list[int] = []
    try:
        server.start()
        children = wait_for(lambda: children_of(server.proc.pid), 30, what="the worker")
        send(server, "first")
        wait_for(lambda: len(server.delivered("alice@example.test")) == 1, 60, what="the first delivery")
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        mark = len(server.log.read_text())
        server._log.close()
        server.start()
        send(server, "second")
        wait_for(lambda: len(server.delivered("alice@example.test")) == 2, 60, what="the second delivery")
        worker = children_of(server.proc.pid)
        assert len(worker) == 1 and all(gone(pid) for pid in children)
        after = server.log.read_text()[mark:]
        assert "RESOURCE_LOCKED" not in after and "restarting" not in after, after[-3000:]
    finally:
        server.stop()
        for pid in children:
            if not gone(pid) and str(tmp_path).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        drop_vhost(vhost)
