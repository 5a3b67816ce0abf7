"""The servers' event loop: uvloop where installed, the standard library's on request."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from mailpipe.core import eventloop
from mailpipe.core.errors import ConfigError
from mailpipe.core.config import load
from tests.support import ServeProcess, add_accounts, wait_for


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_uvloop_when_installed():
    pytest.importorskip("uvloop")
    assert eventloop.chosen("auto") == "uvloop"
    assert eventloop.run(_loop_module(), "auto").startswith("uvloop")


def test_asyncio_choice_runs_the_standard_loop():
    assert eventloop.chosen("asyncio") == "asyncio"
    assert eventloop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_uvloop_missing_is_a_config_error(monkeypatch):
    monkeypatch.setattr(eventloop.importlib.util, "find_spec", lambda name: None)
    assert eventloop.chosen("auto") == "asyncio"
    coro = _loop_module()
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        eventloop.run(coro, "uvloop")
    assert coro.cr_frame is None            # closed, not left unawaited


def test_config_refuses_an_unknown_loop(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('event_loop = "trio"\n')
    with pytest.raises(ConfigError, match="event_loop"):
        load(path)


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_delivers_on_either_loop(tmp_path, loop):
    pytest.importorskip("uvloop")
    server = ServeProcess(tmp_path)
    server.config.write_text(f'event_loop = "{loop}"\n' + server.config.read_text())   # a top-level key
    add_accounts(server.data_dir, "example.test", ["alice"])
    server.start()
    try:
        body = b"From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: loop\r\n\r\nHello.\r\n"
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
            smtp.sendmail("bob@remote.test", ["alice@example.test"], body)
        files = wait_for(lambda: server.delivered("alice@example.test"), 15, what="delivery")
        assert len(files) == 1 and files[0].read_bytes().endswith(b"\r\nHello.\r\n")
        assert f"event loop={loop}" in server.log.read_text()
    finally:
        server.stop()
