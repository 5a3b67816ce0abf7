"""Health and the daemon gauge against a real clamd: PONG while it runs, the named reason once it stops."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mailpipe.ops import health
from tools import avspam
from mailpipe.core.config import Config
from mailpipe.ops.metrics_server import SystemCollector
from tests.ops import procs


@pytest.fixture
def clamd():
    if shutil.which("clamd") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("clamd is not installed (apt-get install clamav-daemon)")
        pytest.skip("clamd is not installed")
    root = Path(tempfile.mkdtemp(prefix="mpops"))       # short: clamd's unix socket path < 108 bytes
    port = avspam.start_clamd(root)
    try:
        avspam.wait_clamd(f"tcp://127.0.0.1:{port}")
        yield root, port
    finally:
        avspam.stop_clamd(root)
        shutil.rmtree(root, ignore_errors=True)


def daemon_gauge(config: Config) -> list[tuple[str, float]]:
    families = {f.name: f for f in SystemCollector(config).collect()}
    return [(s.labels["daemon"], s.value) for s in families["mailpipe_filter_daemon_up"].samples]


@pytest.mark.daemons
def test_health_and_gauge_follow_a_real_clamd_going_down(clamd, tmp_path):
    root, port = clamd
    config = Config(data_dir=tmp_path / "data", antivirus={"clamd": f"tcp://127.0.0.1:{port}"})
    assert health.check_clamd(config).line() == f"clamd: PONG from 127.0.0.1:{port}"
    assert daemon_gauge(config) == [("clamd", 1.0)]
    avspam.stop_clamd(root)
    assert health.check_clamd(config).line() == f"clamd: cannot connect to 127.0.0.1:{port}"
    assert daemon_gauge(config) == [("clamd", 0.0)]


@pytest.mark.daemons
def test_health_command_exit_status_follows_clamd(clamd, tmp_path):
    root, port = clamd
    config = tmp_path / "mailpipe.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[antivirus]\nclamd = "tcp://127.0.0.1:{port}"\n')
    ok = procs.mailpipe(config, "health", "--skip", "listeners", "--skip", "workers")
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.strip() == "healthy: broker, spool, database, clamd"
    avspam.stop_clamd(root)
    failed = procs.mailpipe(config, "health", "--skip", "listeners", "--skip", "workers")
    assert failed.returncode == 1
    assert failed.stdout.strip() == f"clamd: cannot connect to 127.0.0.1:{port}"


def test_health_command_names_a_stopped_broker(tmp_path):
    closed = procs.free_port()
    config = tmp_path / "mailpipe.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nbroker_url = "amqp://guest:guest@127.0.0.1:{closed}/v"\n')
    result = procs.mailpipe(config, "health", "--skip", "listeners")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"broker: cannot connect to 127.0.0.1:{closed}/v")
    assert lines[1] == "workers: not checked: the broker is unreachable"
    assert len(lines) == 2
