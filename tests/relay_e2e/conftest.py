"""Fixtures for the relay wired into the pipeline: a real DNS server, Postfix's smtp-sink, aiosmtpd receivers.

MX hosts live on 127.0.0.x addresses that share one port (``relay.smtp_port``):
smtp-sink on 127.0.0.1, a scripted aiosmtpd receiver on 127.0.0.2, nothing at
all on 127.0.0.3 (connection refused). Every port is a free ephemeral one.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.relay.conftest import Receivers, ScriptedHandler, wait_port
from tests.relay.dnsserver import TestDnsServer, ZoneResolver
from tests.support import free_port

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

ZONE = """
mxtest.test.       300 IN MX 10 mx.mxtest.test.
mx.mxtest.test.    300 IN A 127.0.0.1
nullmx.test.       300 IN MX 0 .
reject.test.       300 IN MX 10 mx.reject.test.
mx.reject.test.    300 IN A 127.0.0.2
flaky.test.        300 IN MX 10 mx.flaky.test.
mx.flaky.test.     300 IN A 127.0.0.2
dead.test.         300 IN MX 10 mx.dead.test.
mx.dead.test.      300 IN A 127.0.0.3
"""

#: the aiosmtpd receiver on 127.0.0.2 refuses this recipient
REJECTED = "bad@reject.test"
REJECT_REPLY = "550 5.1.1 <bad@reject.test>: no such user here"


@pytest.fixture(scope="session")
def dns_server():
    with TestDnsServer(ZoneResolver(ZONE)) as server:
        yield server


class Sink:
    """Postfix's smtp-sink on 127.0.0.1:port, one dump file per received transaction; restartable."""

    def __init__(self, port: int) -> None:
        if not Path(SMTP_SINK).exists():
            pytest.skip("smtp-sink (Debian package postfix) is not installed")
        self.port = port
        # smtp-sink drops privileges to nobody, so its dump folder must be reachable by nobody
        self.dump = Path(tempfile.mkdtemp(prefix="mailpipe-sink-"))
        self.dump.chmod(0o777)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sink":
        cmd = [SMTP_SINK, "-u", "nobody", "-d", f"{self.dump}/%H%M%S.", "-c", f"127.0.0.1:{self.port}", "100"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def messages(self) -> list[bytes]:
        """Every transaction received so far. A file can vanish between listing and reading:
        smtp-sink removes the dump of a transaction its client abandoned (a killed worker)."""
        found = []
        for path in sorted(self.dump.iterdir()):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                found.append(path.read_bytes())
        return found

    def containing(self, needle: str) -> list[bytes]:
        return [m for m in self.messages() if needle.encode() in m]

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dump, ignore_errors=True)


@pytest.fixture(scope="module")
def relay_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def sink(relay_port):
    s = Sink(relay_port).start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def receiver(relay_port):
    """aiosmtpd on 127.0.0.2 (reject.test, flaky.test): refuses ``REJECTED`` with 550."""
    recv = Receivers()
    recv.port = relay_port
    handler = ScriptedHandler(reject_rcpt={REJECTED: REJECT_REPLY})
    recv.start(handler, "127.0.0.2")
    yield handler
    recv.stop()


def relay_toml(dns_server, relay_port: int, **relay: object) -> str:
    """[dns] and [relay] sections pointing the relay at the test DNS server and receivers."""
    keys = {"smtp_port": relay_port, "connect_timeout": 2.0, "greeting_timeout": 5.0, "command_timeout": 5.0,
            "data_init_timeout": 5.0, "data_block_timeout": 5.0, "data_end_timeout": 5.0,
            "concurrency_wait": 2.0, **relay}
    lines = [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in keys.items()]
    return (f'[dns]\nnameservers = ["{dns_server.nameserver}"]\ntimeout = 1.0\n'
            "[relay]\n" + "\n".join(lines) + "\n")


def add_to_section(config: Path, section: str, lines: str) -> None:
    """Insert ``lines`` right after ``[section]`` in a config file written by ``ServeProcess``."""
    text = config.read_text()
    header = f"[{section}]\n"
    assert header in text, f"no [{section}] in {config}"
    config.write_text(text.replace(header, header + lines.rstrip("\n") + "\n", 1))
