"""Real mailpipe processes for ops tests: free ports, a config file, start/stop, wait on conditions.

Every wait is bounded in time and polls a condition (never a bare sleep to let time pass).
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PORT_KEYS = {"ingress": ("smtp_port", "submission_port", "smtps_port"), "imap": ("port", "tls_port"),
             "pop3": ("port", "tls_port"), "metrics": ("port",)}


from tests.support import free_port  # noqa: E402  (one port allocator for all tests)


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition",
             every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def write_config(path: Path, data_dir: Path, *, broker_url: str | None = None, extra: str = "") -> dict:
    """A config with every listener on a free port; returns {section.key: port}."""
    ports = {f"{section}.{key}": free_port() for section, keys in PORT_KEYS.items() for key in keys}
    lines = [f'data_dir = "{data_dir}"', 'hostname = "mx.test"']
    if broker_url:
        lines.append(f'broker_url = "{broker_url}"')
    for section, keys in PORT_KEYS.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {ports[f'{section}.{key}']}" for key in keys]
        if section == "ingress" and _has_key("ingress", "greet_pause"):
            lines.append("greet_pause = 0")
    lines.append("[pipeline]\nsweep_interval = 1")
    path.write_text("\n".join(lines) + "\n" + extra)
    return ports


def _has_key(section: str, key: str) -> bool:
    from mailpipe.core.config import Config
    return key in type(getattr(Config(), section)).model_fields


def mailpipe(config: Path, *args: str, stdin: str | None = None, env: dict | None = None,
             timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailpipe.ops", "--config", str(config), *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def start(config: Path, *args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    handle = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "mailpipe.ops", "--config", str(config), *args],
                            stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 40.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def send(port: int, count: int, rcpt: str = "bob@example.org", sender: str = "alice@remote.test",
         bad_rcpt: str | None = None) -> int:
    """Send ``count`` messages in one session; return how many RCPTs were refused."""
    refused = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for i in range(count):
            smtp.sendmail(sender, [rcpt], f"Subject: ops test {i}\r\nMessage-ID: <ops{i}@t>\r\n\r\nbody {i}\r\n")
        if bad_rcpt:
            try:
                smtp.sendmail(sender, [bad_rcpt], "Subject: x\r\n\r\nx\r\n")
            except smtplib.SMTPRecipientsRefused:
                refused += 1
    return refused


def maildir_count(data_dir: Path) -> int:
    return sum(1 for p in (data_dir / "mail").rglob("*") if p.is_file() and p.parent.name == "new")


def status_json(config: Path, env: dict | None = None) -> dict:
    result = mailpipe(config, "queue", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def depth(snapshot: dict, stage: str) -> int | None:
    return next(q["depth"] for q in snapshot["queues"] if q["stage"] == stage)
