"""Real clamd and spamd on loopback, for tests, CI and a newcomer's machine.

Owns: a custom ClamAV signature database (EICAR, a test marker, the
clamav-testfiles ``clam.exe`` md5 - the official database cannot be
downloaded offline and clamd refuses an empty one), the clamd config, the
spamd command line (local tests only, no Bayes, no per-user prefs), starting
both daemons, waiting until both answer PING, and stopping them by PID.

Usage::

    python -m tools.avspam start DIR [--clamd-port N] [--spamd-port N]   # prints shell env lines
    python -m tools.avspam stop DIR

Ports default to free ephemeral ones. Keep DIR short: unix socket paths must
stay below 108 bytes. Must not: touch system daemons or ``/etc``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import clamd as clamd_pkg

from mailpipe.core.errors import FilterUnavailable
from mailpipe.core.procs import pid_alive
from mailpipe.filters.clamd_client import ClamdClient
from mailpipe.filters.spamc import SpamcClient

#: ASCII marker detected as ``Custom.Test.Marker`` - lets tests build infected archives without EICAR
TEST_MARKER = b"MAILSRV-TEST-MALWARE-MARKER-7f3a9c"
CLAM_EXE = Path("/usr/share/clamav-testfiles/clam.exe")
CLAM_EXE_HDB = "aa15bcf478d165efd2065190eb473bcb:544"
SPAMD_USER = "nobody"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Daemons:
    dir: Path
    clamd_port: int
    spamd_port: int

    @property
    def clamd_tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.clamd_port}"

    @property
    def clamd_unix(self) -> str:
        return f"unix:{self.dir / 'clamd.sock'}"

    @property
    def spamd_tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.spamd_port}"

    @property
    def spamd_unix(self) -> str:
        return f"unix:{self.dir / 'spamd.sock'}"


def binaries_present() -> bool:
    return all(shutil.which(name) for name in ("clamd", "spamd"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_signatures(db_dir: Path) -> None:
    """The custom database: body signatures (.ndb) and the clam.exe md5 (.hdb)."""
    db_dir.mkdir(parents=True, exist_ok=True)
    ndb = [f"Custom.Test.EICAR:0:*:{clamd_pkg.EICAR.hex()}", f"Custom.Test.Marker:0:*:{TEST_MARKER.hex()}"]
    (db_dir / "custom.ndb").write_text("\n".join(ndb) + "\n")
    hdb = CLAM_EXE_HDB
    if CLAM_EXE.is_file():
        data = CLAM_EXE.read_bytes()
        hdb = f"{hashlib.md5(data).hexdigest()}:{len(data)}"
    (db_dir / "custom.hdb").write_text(f"{hdb}:Custom.Test.ClamAVTestFile\n")


def clamd_scratch(root: Path) -> Path:
    """clamd's TemporaryDirectory: on tmpfs when there is one, for its per-scan temporary files.

    clamd writes every stream (and with ScanMail every MIME part) to a temporary
    file and deletes it; on disk that churn makes file creation dear on ext4
    (docs/design.md), in memory it costs nothing and nothing there needs to
    survive a reboot.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / f"mailpipe-clamd-{hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]}"
    return Path(root) / "clamd-tmp"


def clamd_conf(root: Path, port: int, stream_max: str = "50M") -> str:
    settings = [
        ("TemporaryDirectory", clamd_scratch(root)),
        ("DatabaseDirectory", root / "clamav-db"), ("TCPSocket", port), ("TCPAddr", "127.0.0.1"),
        ("LocalSocket", root / "clamd.sock"), ("LocalSocketMode", "666"), ("FixStaleSocket", "yes"),
        ("PidFile", root / "clamd.pid"), ("LogFile", root / "clamd.log"), ("LogTime", "yes"),
        ("Foreground", "no"), ("MaxThreads", 4), ("StreamMaxLength", stream_max), ("MaxScanSize", "100M"),
        ("MaxFileSize", "50M"), ("ScanMail", "yes"), ("ScanArchive", "yes"), ("SelfCheck", 0),
        ("ConcurrentDatabaseReload", "no"), ("Bytecode", "no"),
    ]
    return "".join(f"{key} {value}\n" for key, value in settings)


def spamd_args(root: Path, port: int) -> list[str]:
    args = [
        "spamd", "-d", "-L", "-x", "--cf=dns_available no", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0",
        "-i", f"127.0.0.1:{port}", "-i", str(root / "spamd.sock"), "-A", "127.0.0.1",
        "-m", "2", "--min-children=2", "-r", str(root / "spamd.pid"), "-s", str(root / "spamd.log"),
        "-H", str(root / "spamd-home"),
    ]
    if os.geteuid() == 0:
        args += ["-u", SPAMD_USER]     # spamd will not scan as root
    return args


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=START_TIMEOUT, check=False)
    if what == "clamd" and done.returncode == -signal.SIGINT:
        # clamd's parent waits for the SIGINT its daemon child sends once ready, but installs
        # its handler only after the fork: under load the signal can come first and kill it.
        # The daemon is up then; the callers' PING wait decides.
        return
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed to start (exit {done.returncode}): {done.stderr.strip()[-500:]}")


def _wait_ready(daemons: Daemons, deadline: float) -> None:
    probes = [ClamdClient(daemons.clamd_tcp, 2.0), ClamdClient(daemons.clamd_unix, 2.0),
              SpamcClient(daemons.spamd_tcp, 5.0), SpamcClient(daemons.spamd_unix, 5.0)]
    for probe in probes:
        while True:
            try:
                if probe.ping():
                    break
            except FilterUnavailable:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timeout waiting for {probe.endpoint}")
            time.sleep(0.05)


def start_clamd(root: Path, port: int = 0, stream_max: str = "50M") -> int:
    """Write the database and config into ``root`` and start clamd alone; returns its TCP port."""
    root = Path(root).absolute()
    port = port or free_port()
    write_signatures(root / "clamav-db")
    clamd_scratch(root).mkdir(mode=0o700, parents=True, exist_ok=True)
    (root / "clamd.conf").write_text(clamd_conf(root, port, stream_max))
    _run(["clamd", "-c", str(root / "clamd.conf")], "clamd")
    return port


def start(root: Path, clamd_port: int = 0, spamd_port: int = 0) -> Daemons:
    """Create ``root``, start clamd and spamd, wait for PONG on TCP and unix sockets."""
    root = Path(root).absolute()
    daemons = Daemons(root, clamd_port or free_port(), spamd_port or free_port())
    if len(daemons.spamd_unix) > 110:
        raise RuntimeError(f"{root}: too long for unix sockets, use a shorter directory")
    home = root / "spamd-home"
    home.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(home, SPAMD_USER)
    try:
        start_clamd(root, daemons.clamd_port)
        _run(spamd_args(root, daemons.spamd_port), "spamd")
        _wait_ready(daemons, time.monotonic() + START_TIMEOUT)
    except BaseException:
        stop(root)
        raise
    _write_env(daemons)
    return daemons


def _write_env(daemons: Daemons) -> None:
    lines = [f"CLAMD_URL={daemons.clamd_tcp}", f"CLAMD_SOCKET_URL={daemons.clamd_unix}",
             f"SPAMD_URL={daemons.spamd_tcp}", f"SPAMD_SOCKET_URL={daemons.spamd_unix}",
             f"CLAMD_PORT={daemons.clamd_port}", f"SPAMD_PORT={daemons.spamd_port}"]
    (daemons.dir / "env").write_text("\n".join(lines) + "\n")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None



def stop(root: Path, timeout: float = 20.0) -> None:
    """SIGTERM the PIDs recorded in ``root``; wait (bounded) until they are gone."""
    pids = [pid for pid in (_pid(Path(root) / n) for n in ("clamd.pid", "spamd.pid")) if pid]
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(clamd_scratch(Path(root)), ignore_errors=True)


def stop_clamd(root: Path, timeout: float = 20.0) -> int | None:
    """Stop only clamd (outage tests); returns the PID it had."""
    pid = _pid(Path(root) / "clamd.pid")
    if pid and pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(clamd_scratch(Path(root)), ignore_errors=True)
    return pid


def restart_clamd(root: Path, port: int) -> None:
    """Start clamd again with the config ``start_clamd`` wrote and wait for PONG."""
    clamd_scratch(Path(root)).mkdir(mode=0o700, parents=True, exist_ok=True)
    _run(["clamd", "-c", str(Path(root) / "clamd.conf")], "clamd")
    wait_clamd(f"tcp://127.0.0.1:{port}")


def wait_clamd(url: str, timeout: float = START_TIMEOUT) -> None:
    probe = ClamdClient(url, 2.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe.ping():
                return
        except FilterUnavailable:
            time.sleep(0.05)
    raise RuntimeError(f"clamd at {url} did not answer PING")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.avspam", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("start", "stop"))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--clamd-port", type=int, default=0)
    parser.add_argument("--spamd-port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "stop":
        stop(args.dir)
        return 0
    try:
        daemons = start(args.dir, args.clamd_port, args.spamd_port)
    except RuntimeError as exc:
        print(f"avspam: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write((daemons.dir / "env").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
