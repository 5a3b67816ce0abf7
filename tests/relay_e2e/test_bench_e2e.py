"""The end-to-end relay benchmark runs and measures real deliveries (a small run, embedded broker)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.relay_e2e.conftest import SMTP_SINK

pytestmark = pytest.mark.slow


def test_e2e_relay_benchmark_small_run():
    if not __import__("pathlib").Path(SMTP_SINK).exists():
        pytest.skip("smtp-sink (Debian package postfix) is not installed")
    out = subprocess.run([sys.executable, "-m", "bench", "relay", "--e2e", "--broker", "embedded",
                          "-n", "30", "--warmup", "0", "--destinations", "3", "-c", "3", "--per-session", "5",
                          "--worker-processes", "1", "--timeout", "240"],
                         capture_output=True, timeout=400)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    result = json.loads(out.stdout)
    assert result["accepted"] == result["finished"] == 30
    assert result["not_delivered"] == 0 and result["errors"] == 0
    assert 0 < result["queue_time_p50_ms"] <= result["queue_time_p99_ms"]
    assert result["cpu_ms_per_msg_mailpipe"] > 0 and result["cpu_ms_per_msg_sink"] >= 0
