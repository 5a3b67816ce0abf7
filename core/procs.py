"""Process helpers: liveness, dying with the parent, and pid files of supervised children.

Owns: ``pid_alive``; ``die_with_parent`` (``PR_SET_PDEATHSIG`` through ``prctl``, then a
check that the parent is still the one expected, closing the race with a parent that
died before the call); ``ChildRecord`` pid files that let a restarted supervisor find
and end the children an earlier one of the same data directory left behind.

Must not: find or signal processes by name. A pid from a pid file is signalled only
while ``/proc`` shows the same start time and the same command line that were recorded
when the child started (a pid the kernel reused for another process is left alone).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1               # <linux/prctl.h>
PARENT_ENV = "MAILPIPE_PARENT_PID"  # set by a supervisor for its children


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists (also when it belongs to another user)."""
    if pid <= 0:                     # 0 and negatives name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(expected_parent: int, sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` when our parent exits; False if it is already gone.

    The request is cleared by a change of user (``setuid``): call again after dropping
    privileges. Linux only; elsewhere the parent check alone is made.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    return os.getppid() == expected_parent


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()     # the name in (...) may hold spaces
    if len(fields) < 20 or fields[0] == "Z":      # a zombie has ended already
        return None
    return int(fields[19])


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0")[:-1]]


@dataclass(frozen=True)
class ChildRecord:
    """What a supervisor writes for each child it starts: enough to recognise it later."""

    pid: int
    start: int
    argv: list[str]
    parent: int
    parent_start: int

    @classmethod
    def of(cls, pid: int, argv: list[str]) -> "ChildRecord":
        parent = os.getpid()
        return cls(pid, start_time(pid) or 0, list(argv), parent, start_time(parent) or 0)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> "ChildRecord | None":
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["start"]), [str(a) for a in data["argv"]],
                       int(data["parent"]), int(data["parent_start"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running(self) -> bool:
        """True while the recorded process still runs (same pid, start time and command line)."""
        if not self.start or start_time(self.pid) != self.start:
            return False
        seen = cmdline(self.pid)
        # Celery retitles its process when setproctitle is installed: "[celeryd: ...]"
        return seen == self.argv or bool(seen and seen[0].startswith("[celery"))

    def parent_running(self) -> bool:
        return bool(self.parent_start) and start_time(self.parent) == self.parent_start


def end_stale(directory: Path, timeout: float = 20.0) -> list[int]:
    """End children recorded in `directory` whose supervisor is gone; return their pids.

    SIGTERM first (a worker finishes its task), SIGKILL at the deadline. Records of
    children that no longer run are removed; those of a live supervisor are left.
    """
    ended: list[int] = []
    for path in sorted(directory.glob("*.pid")) if directory.is_dir() else ():
        record = ChildRecord.read(path)
        if record is not None and record.parent_running():
            continue
        if record is not None and record.running():
            _terminate(record, timeout)
            ended.append(record.pid)
        path.unlink(missing_ok=True)
    return ended


def _terminate(record: ChildRecord, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    sig = signal.SIGTERM
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, sig)
    while record.running():
        if time.monotonic() > deadline:
            if sig == signal.SIGKILL:
                return
            sig, deadline = signal.SIGKILL, time.monotonic() + 5.0
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, sig)
        time.sleep(0.05)       # polling another process's exit: there is no fd to wait on

