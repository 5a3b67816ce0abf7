"""Shared test helpers: free ports, configs, a real ``mailpipe serve`` process, RabbitMQ vhosts.

Servers a developer may lack (RabbitMQ, PostgreSQL) are skipped with a reason
outside CI; with ``CI=true`` a missing server is a failure, not a skip.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


_PORTS_PER_WORKER = 2500
_next_port = itertools.count(random.randrange(_PORTS_PER_WORKER))


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now, below the kernel's ephemeral range and unique to this xdist worker.

    Port 0 would hand out an ephemeral port, which the many outgoing test
    connections (and other workers' servers) may take before the server binds it.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = 20000 + (index % 4) * _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = base + next(_next_port) % _PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), 0.5).close()
        return True
    except OSError:
        return False


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value or `timeout` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def need_server(port: int, name: str) -> None:
    if port_open(port):
        return
    if IN_CI:
        pytest.fail(f"{name} on 127.0.0.1:{port} is required in CI but not reachable")
    pytest.skip(f"{name} on 127.0.0.1:{port} not reachable")


def rabbitmq_vhost() -> str:
    """Create a throw-away vhost; the caller deletes it with `drop_vhost`."""
    need_server(5672, "RabbitMQ")
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl not available")
    vhost = f"mptest_{uuid.uuid4().hex[:10]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return vhost


def drop_vhost(vhost: str) -> None:
    subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


def mailpipe(*args: str, config: Path | None = None, data_dir: Path | None = None,
             input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "mailpipe.ops"]
    if config:
        argv += ["--config", str(config)]
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    result = subprocess.run(argv + list(args), input=input, capture_output=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"mailpipe {' '.join(args)} failed: {result.stderr.decode()[-2000:]}")
    return result


class ServeProcess:
    """A real `mailpipe serve` on free ports with its own data dir and config file."""

    def __init__(self, tmp: Path, extra_toml: str = "", broker_url: str = "spool://",
                 ingress_toml: str = "") -> None:
        self.data_dir = tmp / "data"
        self.smtp_port = free_port()
        self.config = tmp / "mailpipe.toml"
        self.config.write_text(
            f'broker_url = "{broker_url}"\nhostname = "mx.example.test"\n'
            f'[ingress]\nsmtp_port = {self.smtp_port}\nsubmission_port = {free_port()}\n'
            f'smtps_port = {free_port()}\n{ingress_toml}'
            f'[imap]\nport = {free_port()}\ntls_port = {free_port()}\n'
            f'[pop3]\nport = {free_port()}\ntls_port = {free_port()}\n'
            f'[metrics]\nport = {free_port()}\n'
            f'[pipeline]\nsweep_interval = 1.0\n'
            + extra_toml)
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "serve.log"

    def cli(self, *args: str, input: bytes | None = None, check: bool = True):
        return mailpipe(*args, config=self.config, data_dir=self.data_dir, input=input, check=check)

    def start(self, command: list[str] | None = None, cwd: Path | None = None) -> "ServeProcess":
        """Start ``command`` (default ``python -m mailpipe.ops``) with ``--config ... serve`` in ``cwd``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
        self._log = open(self.log, "ab")
        self.proc = subprocess.Popen([*(command or [sys.executable, "-m", "mailpipe.ops"]), "--config", str(self.config),
                                      "--data-dir", str(self.data_dir), "serve"],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        wait_for(lambda: port_open(self.smtp_port) or self.proc.poll() is not None, 30, what="smtp port")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return self

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()

    def maildir(self, address: str, folder: str | None = None) -> Path:
        local, domain = address.split("@")
        root = self.data_dir / "mail" / domain / local / "Maildir"
        return root / f".{folder}" if folder else root

    def delivered(self, address: str, folder: str | None = None) -> list[Path]:
        root = self.maildir(address, folder)
        return sorted(p for sub in ("new", "cur") if (root / sub).is_dir() for p in (root / sub).iterdir())


def fast_directory(data_dir: Path):
    """The server's directory opened in-process with a cheap argon2 cost (tests only)."""
    from argon2 import PasswordHasher

    from mailpipe.mailstore.directory import open_directory
    data_dir.mkdir(parents=True, exist_ok=True)
    return open_directory(f"sqlite:///{data_dir.resolve() / 'mailpipe.db'}",
                     hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def add_accounts(data_dir: Path, domain: str, users: list[str], aliases: list[tuple[str, str]] = ()) -> None:
    directory = fast_directory(data_dir)
    directory.add_domain(domain)
    for user in users:
        directory.add_user(f"{user}@{domain}", "pw")
    for source, target in aliases:
        directory.add_alias(source, target)
    directory.close()
