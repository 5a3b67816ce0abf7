"""Celery's Flower against the project's app, as docs/deploy.md documents: it sees a mailpipe worker."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import urllib.request

import pytest

from tests.ops import procs


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_flower_lists_a_running_mailpipe_worker(tmp_path, rabbit_vhost):
    if importlib.util.find_spec("flower") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("flower is not installed (it is in the test extra)")
        pytest.skip("flower is not installed")
    config = tmp_path / "mailpipe.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\nbroker_url = "{rabbit_vhost}"\n'
                      "[metrics]\nenabled = false\n")
    env = {"MAILPIPE_CONFIG": str(config)}
    port = procs.free_port()
    worker = procs.start(config, "worker", "--stages", "all", "--name", "flowertest", log=tmp_path / "worker.log")
    flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "mailpipe.workers.celery_app", "flower",
                               "--address=127.0.0.1", f"--port={port}"], env={**os.environ, **env},
                              stdout=open(tmp_path / "flower.log", "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        def dashboard() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/workers?refresh=1", timeout=5) as reply:
                    return reply.read().decode()
            except OSError:
                return ""
        page = procs.wait_for(lambda: "flowertest@" in (text := dashboard()) and text, 90, "flower showing the worker",
                              every=1.0)
        assert "flowertest@" in page
    finally:
        procs.stop(flower)
        procs.stop(worker)
