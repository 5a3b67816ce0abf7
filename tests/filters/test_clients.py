"""Daemon clients against real sockets that misbehave: silent peers, garbage, bad URLs."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from mailpipe.core.errors import ConfigError, FilterUnavailable
from mailpipe.filters import antivirus, spam
from mailpipe.filters.clamd_client import ClamdClient
from mailpipe.core.endpoint import Endpoint, parse_endpoint
from mailpipe.filters.spamc import SpamcClient
from mailpipe.filters.verdict import Action


@pytest.fixture
def silent_server():
    """A loopback listener that accepts the handshake (backlog) but never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def garbage_server():
    """A loopback server that answers every connection with garbage and closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(5)
    stop = threading.Event()

    def serve():
        for _ in range(20):
            if stop.is_set():
                return
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HELLO I AM NOT A DAEMON\r\n\r\n")
                except OSError:
                    pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    try:
        server.shutdown(socket.SHUT_RDWR)      # wakes the blocked accept()
    except OSError:
        pass
    server.close()
    thread.join(timeout=5)


@pytest.mark.parametrize("make", [lambda u: ClamdClient(u, timeout=0.5).scan, lambda u: SpamcClient(u, timeout=0.5).check])
def test_silent_daemon_times_out(silent_server, make):
    started = time.monotonic()
    with pytest.raises(FilterUnavailable):
        make(silent_server)(b"Subject: x\r\n\r\nhello\r\n")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("make", [lambda u: ClamdClient(u, timeout=2).scan, lambda u: SpamcClient(u, timeout=2).check])
def test_garbage_reply_is_unavailable(garbage_server, make):
    with pytest.raises(FilterUnavailable):
        make(garbage_server)(b"Subject: x\r\n\r\nhello\r\n")


@pytest.mark.parametrize("url, expected", [
    ("tcp://127.0.0.1:3310", Endpoint(host="127.0.0.1", port=3310)),
    ("tcp://[::1]:7830", Endpoint(host="::1", port=7830)),
    ("unix:/run/clamav/clamd.ctl", Endpoint(path="/run/clamav/clamd.ctl")),
    ("unix:///run/spamd.sock", Endpoint(path="/run/spamd.sock")),
])
def test_parse_endpoint(url, expected):
    assert parse_endpoint(url) == expected


@pytest.mark.parametrize("url", ["127.0.0.1:3310", "tcp://127.0.0.1", "tcp://:3310", "http://h:1", "unix:relative",
                                 "unix:/" + "x" * 120, "tcp://h:99999", "tcp://h:1/path"])
def test_bad_endpoints_are_config_errors(url):
    with pytest.raises(ConfigError):
        parse_endpoint(url)


@pytest.mark.parametrize("url", ["tcp://a..b.invalid:3310", "tcp://" + "x" * 70 + ".invalid:3310"])
def test_unresolvable_host_is_unavailable_not_a_crash(url):
    with pytest.raises(FilterUnavailable):
        ClamdClient(url, timeout=2).scan(b"x")
    with pytest.raises(FilterUnavailable):
        SpamcClient(url, timeout=2).check(b"x")


@pytest.mark.parametrize("section, key", [("antivirus", "clamd"), ("spam", "spamd")])
def test_bad_daemon_address_fails_at_config_load(section, key):
    from mailpipe.core.config import load
    with pytest.raises(ConfigError, match=rf"{section}\.{key} = 'localhost:3310'"):
        load(None, **{section: {key: "localhost:3310"}})
    assert getattr(load(None, **{section: {key: "unix:/run/d.sock"}}), section).model_dump()[key] == "unix:/run/d.sock"


def test_docs_filters_config_example_loads(tmp_path):
    from pathlib import Path

    from mailpipe.core.config import load
    text = (Path(__file__).resolve().parents[2] / "docs" / "filters.md").read_text(encoding="utf-8")
    block = text.split("```\n", 2)[1]
    path = tmp_path / "mailpipe.toml"
    path.write_text(block, encoding="utf-8")
    config = load(path)
    assert config.antivirus.clamd == "tcp://127.0.0.1:3310" and config.spam.gtube_action == "junk"
