"""Fixtures for ops tests: a real ``mailpipe serve`` on free ports with one local user."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ops import procs

USER = "bob@example.org"


@dataclass
class Served:
    config: Path
    data_dir: Path
    ports: dict
    log: Path

    @property
    def smtp(self) -> int:
        return self.ports["ingress.smtp_port"]

    @property
    def metrics(self) -> int:
        return self.ports["metrics.port"]


def add_accounts(config: Path) -> None:
    for args, stdin in ((("domain", "add", "example.org"), None),
                        (("user", "add", USER, "--password-stdin"), "secret\n")):
        result = procs.mailpipe(config, *args, stdin=stdin)
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    root = tmp_path_factory.mktemp("serve")
    config, data_dir, log = root / "mailpipe.toml", root / "data", root / "serve.log"
    ports = procs.write_config(config, data_dir)
    add_accounts(config)
    proc = procs.start(config, "serve", log=log)
    try:
        # readiness from the log, not by connecting: a probe would count as an SMTP connection
        procs.wait_for(lambda: "mailpipe ready" in log.read_text() and procs.port_open(ports["metrics.port"]),
                       60, "serve ready")
        yield Served(config, data_dir, ports, log)
    finally:
        procs.stop(proc)


def rabbitmq_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def rabbit_vhost():
    """A throwaway RabbitMQ vhost (deleted after); skipped without RabbitMQ unless CI=true."""
    import shutil
    import subprocess
    import uuid
    if not rabbitmq_reachable() or not shutil.which("rabbitmqctl"):
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672 (required when CI=true)")
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    vhost = f"mp_ops_{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, timeout=60)
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], timeout=60)
