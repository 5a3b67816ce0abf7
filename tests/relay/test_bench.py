"""The relay component benchmark runs end to end against smtp-sink (small count)."""

from __future__ import annotations

import shutil

import pytest

from bench import relay as bench


@pytest.mark.skipif(not shutil.which("smtp-sink") and not shutil.which("/usr/sbin/smtp-sink"),
                    reason="smtp-sink (Debian package postfix) is not installed")
def test_relay_bench_small_run(capsys):
    assert bench.main(["--messages", "60", "--threads", "4", "--destinations", "3"]) == 0
    out = capsys.readouterr().out
    assert "60 messages" in out and "failures 0" in out and "msgs/s" in out
