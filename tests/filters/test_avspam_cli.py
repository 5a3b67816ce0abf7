"""``python -m tools.avspam start DIR`` / ``stop DIR`` as a newcomer or CI runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mailpipe.filters.clamd_client import ClamdClient
from mailpipe.filters.spamc import SpamcClient
from tools import avspam

pytestmark = [pytest.mark.daemons, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_prints_env_and_stop_ends_both(daemons):          # daemons: skip/fail like the others
    root = Path(tempfile.mkdtemp(prefix="mpcli"))
    run = [sys.executable, "-m", "tools.avspam"]
    started = subprocess.run([*run, "start", str(root)], capture_output=True, text=True, timeout=120, check=False)
    try:
        assert started.returncode == 0, started.stderr
        env = dict(line.split("=", 1) for line in started.stdout.split())
        assert ClamdClient(env["CLAMD_SOCKET_URL"], 5).ping()
        assert SpamcClient(env["SPAMD_URL"], 10).ping()
        pids = [int((root / name).read_text()) for name in ("clamd.pid", "spamd.pid")]
        assert all(_alive(pid) for pid in pids)
    finally:
        stopped = subprocess.run([*run, "stop", str(root)], capture_output=True, text=True, timeout=60, check=False)
    assert stopped.returncode == 0
    assert not any(_alive(pid) for pid in pids)
    assert (root / "clamav-db" / "custom.ndb").read_text().count("Custom.Test.") == 2
    assert avspam.TEST_MARKER.hex() in (root / "clamav-db" / "custom.ndb").read_text()
    shutil.rmtree(root, ignore_errors=True)
