"""The issue's "how it will be checked" flow, exactly: `mailpipe tls selfsigned`, a config with [tls] and
`plaintext_on_loopback = false`, the real `mailpipe --config FILE serve` process, and swaks (free ports)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest

from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry
from tests.support import ServeProcess, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")]

ALICE = ["--auth-user", "alice@example.test", "--auth-password", "alice-pw"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    tls_dir = tmp / "data" / "tls"
    srv = ServeProcess(tmp, extra_toml=(f'[tls]\ncert = "{tls_dir / "mail.example.test.crt"}"\n'
                                        f'key = "{tls_dir / "mail.example.test.key"}"\n'
                                        "[auth]\nplaintext_on_loopback = false\n"))
    out = srv.cli("tls", "selfsigned", "mail.example.test").stdout.decode()
    assert 'cert = "' in out and (tls_dir / "mail.example.test.key").stat().st_mode & 0o077 == 0
    srv.cli("domain", "add", "example.test")
    srv.cli("user", "add", "alice@example.test", "--password-stdin", input=b"alice-pw")
    srv.cli("user", "add", "bob@example.test", "--password-stdin", input=b"bob-pw")
    ingress = tomllib.loads(srv.config.read_text())["ingress"]
    srv.ports = {"smtp": ingress["smtp_port"], "submission": ingress["submission_port"],
                 "smtps": ingress["smtps_port"]}
    srv.start()
    yield srv
    srv.stop()


def _entry(served, qid: str) -> Entry:
    return FilesystemSpool(served.data_dir / "spool").load(qid)      # active or done


def swaks(port: int, *args: str) -> tuple[int, str]:
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "client.example.test",
            "--timeout", "20", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


def queued_id(output: str) -> str:
    match = re.search(r"<~  250 2\.0\.0 Ok: queued as (\w+)", output)
    assert match, output
    return match.group(1)


def test_starttls_auth_plain_relays_and_reaches_remote(served):
    code, out = swaks(served.ports["submission"], "--tls", "--auth", "PLAIN", *ALICE,
                      "--from", "alice@example.test", "--to", "x@foreign.test")
    assert code == 0, out
    qid = queued_id(out)
    # the remote stage takes it (relay then defers or bounces: foreign.test does not exist)
    wait_for(lambda: any(e.stage == "remote" for e in _entry(served, qid).trace), 30,
             what="the remote stage handling the message")
    assert _entry(served, qid).auth_user == "alice@example.test"


def test_without_auth_is_refused(served):
    code, out = swaks(served.ports["submission"], "--tls", "--from", "alice@example.test",
                      "--to", "x@foreign.test")
    assert code != 0 and "530 5.7.0" in out, out
    code, out = swaks(served.ports["smtp"], "--from", "alice@example.test", "--to", "x@foreign.test")
    assert code != 0 and "554 5.7.1" in out, out


def test_wrong_password_gets_535(served):
    code, out = swaks(served.ports["submission"], "--tls", "--auth", "PLAIN",
                      "--auth-user", "alice@example.test", "--auth-password", "wrong",
                      "--from", "alice@example.test", "--to", "x@foreign.test")
    assert code != 0 and "535 5.7.8" in out, out


def test_auth_before_starttls_is_refused(served):
    code, out = swaks(served.ports["submission"], "--auth", "PLAIN", *ALICE,
                      "--from", "alice@example.test", "--to", "x@foreign.test")
    assert code != 0 and "235 " not in out and "queued as" not in out, out


def test_implicit_tls_and_auth(served):
    code, out = swaks(served.ports["smtps"], "--tlsc", "--auth", "PLAIN", *ALICE,
                      "--from", "alice@example.test", "--to", "x@foreign.test")
    assert code == 0, out
    queued_id(out)


def test_other_users_sender_gets_553(served):
    code, out = swaks(served.ports["submission"], "--tls", "--auth", "PLAIN", *ALICE,
                      "--from", "bob@example.test", "--to", "x@foreign.test")
    assert code != 0 and "553 5.7.1" in out, out


def test_ehlo_on_mx_lists_extensions(served):
    code, out = swaks(served.ports["smtp"], "--quit-after", "EHLO")
    assert code == 0, out
    for extension in ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "STARTTLS"):
        assert re.search(rf"<[-~]\s+250[ -]{extension}\b", out), (extension, out)
    assert re.search(r"250[ -]SIZE \d+", out), out
