"""`mailpipe serve` started as root with ``[process] user`` (issue 17 item 3), for real.

Serve binds its ports (the SMTP port below 1024 here, which only root may bind), hands
the data directory to the user and then every process runs as it: the main process
(ingress, IMAP, POP3, scheduler) and the worker child, checked in /proc. Mail is still
delivered, into files the user owns.

The user is ``nobody`` (no account is added to the machine). Neither the test interpreter
(under /root here) nor the checkout (a clean clone may sit in a 0700 directory) need be
readable by ``nobody``, so the test copies what serve imports into a world-readable
directory: the venv's site-packages (the dependencies, without the editable install's
hook) and the product's folders assembled as the installed ``mailpipe`` package. Serve
runs with a venv of the system Python (/usr/bin/python3, the same 3.11) that loads that
copy; the children it starts use that interpreter too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from tests.support import ServeProcess, add_accounts, wait_for

SYSTEM_PYTHON = Path("/usr/bin/python3")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system python3")]


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])        # real uid
    raise AssertionError(f"no Uid line for pid {pid}")


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def privileged_free_port() -> int:
    for port in range(1000, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    pytest.skip("no free port below 1024")


@pytest.fixture
def world_readable_root():
    root = Path(tempfile.mkdtemp(prefix="mailpipe-user-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


CHECKOUT = Path(__file__).resolve().parents[2]
PARTS = ("access", "broker", "core", "delivery", "filters", "ingress", "mailstore", "ops", "spool", "workers")


@pytest.fixture(scope="module")
def readable_site():
    """A world-readable copy of the dependencies and of the product as installed (see above)."""
    root = Path(tempfile.mkdtemp(prefix="mailpipe-site-", dir="/tmp"))
    root.chmod(0o755)
    site = root / "site"
    try:
        shutil.copytree(sysconfig.get_paths()["purelib"], site, symlinks=True,
                        ignore=shutil.ignore_patterns("__editable__*", "__pycache__"))
        package = site / "mailpipe"
        package.mkdir()
        shutil.copy(CHECKOUT / "mailpipe" / "__init__.py", package / "__init__.py")
        for part in PARTS:
            shutil.copytree(CHECKOUT / part, package / part, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        yield site
    finally:
        shutil.rmtree(root, ignore_errors=True)


def system_venv(root: Path, site: Path) -> Path:
    venv = root / "venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "mailpipe-test.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    return python


def test_serve_as_root_runs_every_process_as_the_configured_user(world_readable_root, readable_site):
    nobody = pwd.getpwnam("nobody")
    python = system_venv(world_readable_root, readable_site)
    server = ServeProcess(world_readable_root, extra_toml='[process]\nuser = "nobody"\n')
    port = privileged_free_port()
    text = server.config.read_text().replace(f"smtp_port = {server.smtp_port}\n", f"smtp_port = {port}\n", 1)
    server.config.write_text(text)
    server.smtp_port = port
    server.config.chmod(0o644)
    add_accounts(server.data_dir, "example.test", ["alice"])      # files made by root: serve hands them over
    server.start(command=[str(python), "-m", "mailpipe.ops"], cwd=world_readable_root)   # the checkout's mailpipe/ would shadow
    try:
        assert server.proc is not None
        wait_for(lambda: "mailpipe ready" in server.log.read_text(), 30, what="serve ready")
        main = server.proc.pid
        workers = wait_for(lambda: children_of(main), 30, what="the worker child")
        assert uid_of(main) == nobody.pw_uid, server.log.read_text()[-2000:]
        assert [uid_of(pid) for pid in workers] == [nobody.pw_uid] * len(workers)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("bob@remote.test", ["alice@example.test"], "Subject: as nobody\r\n\r\nhi\r\n")
        delivered = wait_for(lambda: server.delivered("alice@example.test"), 30, what="a delivery")
        assert delivered[0].stat().st_uid == nobody.pw_uid
        assert (server.data_dir / "mailpipe.db").stat().st_uid == nobody.pw_uid
        assert "[process] user" not in server.log.read_text()          # no root warning: it is set
    finally:
        server.stop()


def test_process_user_with_several_ingress_processes_is_refused_in_one_line(tmp_path):
    server = ServeProcess(tmp_path, extra_toml='[process]\nuser = "nobody"\n', ingress_toml="processes = 2\n")
    result = server.cli("serve", check=False)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "[ingress] processes" in lines[0], lines


def test_unknown_process_user_is_one_line(tmp_path):
    server = ServeProcess(tmp_path, extra_toml='[process]\nuser = "no-such-user-here"\n')
    result = server.cli("serve", check=False)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "no-such-user-here" in lines[0], lines


@pytest.mark.parametrize("command", [["domain", "add", "x.test"], ["queue", "status"],
                                     ["tls", "selfsigned", "mx.x.test"], ["serve"]])
def test_unwritable_data_directory_is_one_line(world_readable_root, readable_site, command):
    """Issue 17 item 14: a data directory the user may not write, for a real unprivileged user."""
    python = system_venv(world_readable_root, readable_site)
    data = world_readable_root / "data"
    data.mkdir(mode=0o755)                                  # root's; nobody may only read it
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    result = subprocess.run([str(python), "-m", "mailpipe.ops", "--data-dir", str(data), *command],
                            user="nobody", group="nogroup", extra_groups=[], cwd="/", env=env,
                            capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert str(data) in lines[0] and "not writable" in lines[0], lines
