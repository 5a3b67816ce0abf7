"""Deployment files as shipped: systemd units verify, example configs and env files load, rules parse."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ops import procs

DEPLOY = Path(__file__).resolve().parents[2] / "ops" / "deploy"
UNITS = DEPLOY / "systemd"
EXAMPLE = DEPLOY / "one-host-rabbitmq"
INSTALLED_AS = "/usr/local/bin/mailpipe"      # the ExecStart path the units ship with


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing (install the systemd package)")
        pytest.skip("systemd-analyze is not installed")
    return found


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """Verified as shipped except the mailpipe path, which must exist where verify runs."""
    analyze = systemd_analyze()
    mailpipe = shutil.which("mailpipe")
    assert mailpipe, "the mailpipe command is not installed"
    for unit in UNITS.iterdir():
        text = unit.read_text()
        assert unit.suffix == ".target" or INSTALLED_AS in text, unit.name
        (tmp_path / unit.name).write_text(text.replace(INSTALLED_AS, mailpipe))
    names = ["mailpipe-worker@antivirus.service", "mailpipe-worker@smtp_in.service",
             "mailpipe-ingress.service", "mailpipe-scheduler.service", "mailpipe-imap.service",
             "mailpipe-pop3.service", "mailpipe.target"]
    result = subprocess.run([analyze, "verify", *(f"./{n}" for n in names)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""       # no warnings either (unknown keys, bad values)


def test_worker_template_runs_the_instance_stage():
    text = (UNITS / "mailpipe-worker@.service").read_text()
    assert f"ExecStart={INSTALLED_AS} worker --stages %i --name %p-%i" in text
    assert "EnvironmentFile=-/etc/mailpipe/worker-%i.env" in text


def test_example_config_passes_config_check():
    result = procs.mailpipe(EXAMPLE / "mailpipe.toml", "config", "check", str(EXAMPLE / "mailpipe.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": ok")


def env_file(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(pairs)


def test_every_role_env_file_is_a_valid_override_with_its_own_metrics_port(monkeypatch):
    from mailpipe.core.config import load
    ports = {}
    for path in sorted((EXAMPLE / "env").glob("*.env")):
        env = env_file(path)
        with monkeypatch.context() as patched:
            for key, value in env.items():
                assert key.startswith("MAILPIPE_"), key
                patched.setenv(key, value)
            config = load(EXAMPLE / "mailpipe.toml")
        assert config.metrics.port == int(env["MAILPIPE_METRICS__PORT"]), path.name
        if "MAILPIPE_WORKER__CONCURRENCY" in env:
            assert config.worker.concurrency == int(env["MAILPIPE_WORKER__CONCURRENCY"])
        ports[path.stem] = config.metrics.port
    roles = {"ingress", "scheduler", "imap", "pop3"} | {f"worker-{s}" for s in
                                                        ("smtp_in", "antivirus", "spam", "rules", "route", "local", "remote")}
    assert set(ports) == roles
    assert len(set(ports.values())) == len(ports)       # one endpoint per role on one host
    peers = load(EXAMPLE / "mailpipe.toml").metrics.peers   # what queue status --watch sums for rates
    assert sorted(peers) == sorted(f"127.0.0.1:{p}" for role, p in ports.items() if role != "scheduler")


def test_example_config_is_the_rabbitmq_one_host_layout():
    from mailpipe.core.config import load
    config = load(EXAMPLE / "mailpipe.toml")
    assert config.broker_url.startswith("amqp://") and not config.embedded_broker
    assert (config.ingress.smtp_port, config.imap.port, config.pop3.port) == (25, 143, 110)
    assert config.antivirus.clamd and config.spam.spamd and config.rules.file


def test_example_rules_file_parses():
    from mailpipe.filters.rules.parser import parse_file
    ruleset = parse_file(EXAMPLE / "rules.toml")
    assert [r.name for r in ruleset.rules] == ["trusted-partner", "known-spam-sender", "executable-attachments"]


def test_every_service_unit_runs_unprivileged_with_a_descriptor_limit():
    """Issue 17 items 3 and 6: units keep their own user and raise the descriptor limit."""
    for unit in sorted(UNITS.glob("*.service")):
        text = unit.read_text()
        assert "\nUser=mailpipe\n" in text, unit.name
        limit = [line for line in text.splitlines() if line.startswith("LimitNOFILE=")]
        assert len(limit) == 1 and int(limit[0].split("=")[1]) >= 65536, unit.name
