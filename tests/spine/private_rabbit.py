"""A private RabbitMQ node for fault tests (its own node name, ports and data directory).

The shared RabbitMQ on 5672 is never stopped; a test that needs a broker outage
starts one of these (recipe: ../shared/notes/many-hosts.md), takes it down with
``stop_app``/``start_app`` and stops it in a ``finally``. Debian's scripts run the
node as the ``rabbitmq`` user, so its directory belongs to that user. Outside CI the
test is skipped when rabbitmq-server is not installed or we are not root; in CI
that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import IN_CI, free_port, port_open, wait_for

START_TIMEOUT = 60.0


def _need_rabbitmq_server() -> None:
    missing = shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None
    reason = "rabbitmq-server is not installed" if missing else (
        "a private RabbitMQ node needs root (it runs as the rabbitmq user)" if os.geteuid() != 0 else None)
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"{reason}: required in CI")
    pytest.skip(reason)


class PrivateRabbit:
    """``start()`` a node on free loopback ports; ``url(vhost)``; ``outage()`` pieces; ``stop()``."""

    def __init__(self) -> None:
        _need_rabbitmq_server()
        self.name = f"mptest{uuid.uuid4().hex[:8]}@localhost"
        self.port, self.dist_port = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mp-rabbit-"))
        self.started = False

    def _env(self) -> dict[str, str]:
        d = self.dir
        return {**os.environ, "RABBITMQ_NODENAME": self.name, "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "plugins"),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"), "RABBITMQ_PID_FILE": str(d / "pid"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    def ctl(self, *args: str, timeout: float = START_TIMEOUT) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.name, *args], check=True, capture_output=True,
                       env=self._env(), timeout=timeout)

    def start(self) -> "PrivateRabbit":
        (self.dir / "mnesia").mkdir()
        (self.dir / "log").mkdir()
        (self.dir / "plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                                                "loopback_users = none\n")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.dir)], check=True)
        self.started = True
        subprocess.run(["rabbitmq-server", "-detached"], check=True, capture_output=True, env=self._env(),
                       timeout=START_TIMEOUT)
        wait_for(self._pings, START_TIMEOUT, interval=0.5, what="the private RabbitMQ node to run")
        self.ctl("await_startup")
        wait_for(lambda: port_open(self.port), START_TIMEOUT, what="the private RabbitMQ port")
        return self

    def _pings(self) -> bool:
        """The node answers (``rabbitmq-server -detached`` returns before it is registered)."""
        done = subprocess.run(["rabbitmqctl", "-n", self.name, "ping"], capture_output=True, env=self._env(),
                              timeout=START_TIMEOUT)
        return done.returncode == 0

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def stop_app(self) -> None:
        self.ctl("stop_app")
        wait_for(lambda: not port_open(self.port), START_TIMEOUT, what="the private RabbitMQ port to close")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup")
        wait_for(lambda: port_open(self.port), START_TIMEOUT, what="the private RabbitMQ port to open")

    def stop(self) -> None:
        """Stop the node (by its own name) and remove its directory; safe to call twice."""
        if self.started:
            pid_file = self.dir / "pid"
            subprocess.run(["rabbitmqctl", "-n", self.name, "stop", str(pid_file)], capture_output=True,
                           env=self._env(), timeout=START_TIMEOUT)
            self._kill_leftover(pid_file)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _kill_leftover(pid_file: Path) -> None:
        """If ``stop`` failed, end the node's own process (by its pid file, never by name)."""
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
