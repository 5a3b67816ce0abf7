"""``[ingress] processes = 2``: serve runs a second ingress process on the same ports (SO_REUSEPORT)."""

from __future__ import annotations

import os
import re
import signal
import socket
import smtplib
import subprocess

import pytest

from mailpipe.core.procs import pid_alive
from tests.support import ServeProcess, add_accounts, port_open, wait_for

pytestmark = pytest.mark.slow


def ingress_children(server: ServeProcess) -> list[int]:
    found = []
    for pid in server.worker_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"\0ingress\0" in handle.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def listening_pids(port: int) -> set[int]:
    out = subprocess.run(["ss", "-H", "-ltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def send(port: int, i: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("bob@remote.test", ["alice@example.test"],
                      f"Subject: n{i}\r\nMessage-ID: <n{i}@remote.test>\r\n\r\nbody {i}\r\n".encode())


def test_two_ingress_processes_share_the_port_and_are_supervised(tmp_path):
    server = ServeProcess(tmp_path, ingress_toml="processes = 2\ngreet_pause = 0\n")
    add_accounts(server.data_dir, "example.test", ["alice"])
    server.start()
    try:
        children = wait_for(lambda: ingress_children(server), 30, what="the second ingress process")
        assert len(children) == 1
        wait_for(lambda: listening_pids(server.smtp_port) == {server.proc.pid, children[0]}, 30,
                 what="both processes listening on the SMTP port")
        for i in range(30):
            send(server.smtp_port, i)
        files = wait_for(lambda: len(server.delivered("alice@example.test")) == 30 and
                         server.delivered("alice@example.test"), 30, what="30 deliveries")
        assert len(files) == 30

        os.kill(children[0], signal.SIGKILL)               # the supervisor restarts it
        restarted = wait_for(lambda: [p for p in ingress_children(server) if p != children[0]], 30,
                             what="a restarted ingress process")
        wait_for(lambda: restarted[0] in listening_pids(server.smtp_port), 30, what="the restart listening")
        send(server.smtp_port, 30)
        wait_for(lambda: len(server.delivered("alice@example.test")) == 31, 30, what="delivery after restart")
    finally:
        server.stop()
    assert not port_open(server.smtp_port)
    assert not pid_alive(restarted[0])                  # SIGTERM to serve stops its ingress children too


def test_a_taken_port_stops_serve_with_one_clear_line(tmp_path):
    server = ServeProcess(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", server.smtp_port))
        holder.listen()
        result = server.cli("serve", check=False)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert f"mailpipe: ingress: cannot listen on 127.0.0.1:{server.smtp_port} (smtp)" in err
    assert "Traceback" not in err
