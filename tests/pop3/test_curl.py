"""curl as a second real third-party POP3 client: SASL PLAIN, STLS, POP3S, UIDL, DELE."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from mailpipe.access.pop3 import wire

from tests.pop3.conftest import PASSWORD, USER

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")

MESSAGE = b"Subject: curl\r\n\r\nbody\r\n.dot line\r\n"


def _curl(*args: str) -> bytes:
    proc = subprocess.run(["curl", "-sS", "-u", f"{USER}:{PASSWORD}", *args],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_curl_list_retr_uidl_dele(server):
    server.deliver(MESSAGE, "c1")
    url = f"pop3://127.0.0.1:{server.port}"
    assert _curl(f"{url}/") == b"1 %d\r\n" % wire.wire_size(MESSAGE)
    assert _curl(f"{url}/1") == MESSAGE
    assert _curl("-X", "UIDL", f"{url}/") == b"1 c1,S=%d\r\n" % len(MESSAGE)
    _curl("-X", "DELE", "-I", f"{url}/1")
    assert os.listdir(server.maildir() / "new") == [] and os.listdir(server.maildir() / "cur") == []


def test_curl_stls_and_pop3s(tls_server, tmp_path):
    tls_server.deliver(MESSAGE, "c2")
    ca = str(tmp_path / "ca.pem")
    assert _curl("--ssl-reqd", "--cacert", ca, f"pop3://localhost:{tls_server.port}/1") == MESSAGE
    assert _curl("--cacert", ca, f"pop3s://localhost:{tls_server.tls_port}/1") == MESSAGE
