"""CPU time and RSS of process trees, read from /proc (Linux), for the benchmarks; finished
spool entries as the benchmarks read them."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(x) for x in handle.read().split()]
    except OSError:
        pass
    return found


def tree(roots: list[int]) -> list[int]:
    result, pending = [], list(roots)
    while pending and len(result) < 10_000:
        pid = pending.pop()
        if pid not in result:
            result.append(pid)
            pending += _children(pid)
    return result


def rabbitmq_pids() -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    if b"rabbit" in handle.read():
                        pids.append(int(name))
            except OSError:
                pass
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e6


class Sampler(threading.Thread):
    """Samples the RSS of a process set every 0.5 s until stopped (at most one hour)."""

    def __init__(self, pids_fn) -> None:
        super().__init__(daemon=True)
        self.pids_fn, self.samples, self._stop_event = pids_fn, [], threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 3600
        while not self._stop_event.is_set() and time.monotonic() < deadline:
            self.samples.append(rss_mb(self.pids_fn()))
            self._stop_event.wait(0.5)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    @property
    def peak_mb(self) -> float:
        return round(max(self.samples, default=0.0), 1)

    def quarter_mb(self, which: int) -> float:
        if not self.samples:
            return 0.0
        q = max(1, len(self.samples) // 4)
        part = self.samples[:q] if which == 0 else self.samples[-q:]
        return round(sum(part) / len(part), 1)


def create_cost_ms(directory: Path | str, count: int = 200) -> float:
    """CPU ms to create one empty file in ``directory`` (the probe files are removed again).

    On ext4 without a journal (this kind of machine) creating files is 10-40 times
    dearer for a few minutes after many files were deleted in the same block
    group, e.g. by the previous benchmark's clean-up; the benchmarks report this
    figure and wait for it to settle so that runs are comparable. The probe files
    go into ``directory`` itself (a new subfolder could land in another group).
    """
    names = [os.path.join(directory, f".create-probe-{os.getpid()}-{i}") for i in range(count)]
    started = time.process_time()
    for name in names:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    cost = (time.process_time() - started) * 1000 / count
    for name in names:
        os.unlink(name)
    return round(cost, 3)


def wait_for_quiet_fs(directory: Path | str, limit_ms: float = 0.2, timeout: float = 300.0) -> float:
    """Probe the create cost every 10 s until it is below ``limit_ms`` (or ``timeout``); return it."""
    deadline = time.monotonic() + timeout
    cost = create_cost_ms(directory)
    while cost > limit_ms and time.monotonic() < deadline:
        print(f"file creation costs {cost} ms here (recent deletions); waiting for it to settle",
              file=sys.stderr, flush=True)
        time.sleep(10)
        cost = create_cost_ms(directory)
    return cost


def done_entry(path: Path, timeout: float = 5.0) -> dict:
    """The final entry in ``done/<ID>.json``. A message's queue file is renamed there and then
    overwritten with its final entry, so a reader can briefly meet the whole queue file (its
    entry line, then the message) or a half-written entry: read again until it is one JSON."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(path.read_bytes())
        except ValueError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)
