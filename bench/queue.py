"""``python -m bench queue``: ``mailpipe queue list`` and ``queue status`` on a deferred backlog.

Builds N deferred entries (default 20,000) in a fresh data directory through the
spool itself (create, then a relay-like deferral saved with its trace), then runs
``mailpipe queue list`` (table and ``--json``) and ``mailpipe queue status --json``
as an operator would (a new process each, output to a pipe) and prints wall time,
CPU time and peak RSS (the child's own rusage) of each; the first run after the
build also fills the spool's index, so the best of ``--runs`` is printed.

Targets (issue 16): list under 1 s and 50 MB, status under 0.5 s, for 20,000.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailpipe.core.ids import new_queue_id
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry, Recipient, State

BODY = b"From: a@example.test\r\nTo: b@remote.test\r\nSubject: backlog\r\n\r\n" + b"x" * 2000 + b"\r\n"
CONFIG = 'broker_url = "spool://"\n'


def build(data_dir: Path, count: int, now: float) -> None:
    spool = FilesystemSpool(data_dir / "spool")
    for i in range(count):
        entry = Entry(id=new_queue_id(now - count + i), sender=f"sender{i % 50}@example.test",
                      recipients=[Recipient(address=f"user{i % 7}@dest{i % 40}.test", route="remote")],
                      size=len(BODY), received_at=now - count + i, client_ip="127.0.0.1", helo="client.test")
        spool.create(entry, [BODY])
        for stage in ("smtp_in", "antivirus", "spam", "rules", "route"):
            entry.record(now, stage, "accept", ms=0.4)
        entry.stage, entry.state, entry.attempts = "remote", State.DEFERRED, 1
        entry.next_attempt, entry.last_error = now + 3600, "451 4.3.0 try again later"
        entry.recipients[0].status, entry.recipients[0].detail = "deferred", entry.last_error
        entry.record(now, "remote", "deferred", entry.last_error)
        spool.save(entry, durable=False)


def run(data_dir: Path, *args: str) -> tuple[float, float, int, float]:
    """Wall seconds, peak RSS (MB), output bytes and CPU seconds (user + system) of one ``mailpipe`` command."""
    env = dict(os.environ, MAILPIPE_DATA_DIR=str(data_dir), MAILPIPE_CONFIG=str(data_dir / "mailpipe.toml"))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "mailpipe.ops", *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)      # this child's own peak RSS
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"mailpipe {' '.join(args)} failed: {err.read().decode()[-500:]}")
        return wall, usage.ru_maxrss / 1024, out.tell(), usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench queue", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (best is printed)")
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse/keep this data directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mailpipe-bench-queue-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        (data_dir / "spool").mkdir(parents=True, exist_ok=True)
        (data_dir / "mailpipe.toml").write_text(CONFIG)
        if not any((data_dir / "spool").glob("queue/*")):
            start = time.perf_counter()
            build(data_dir, args.count, time.time())
            print(f"built {args.count} deferred entries in {time.perf_counter() - start:.1f} s")
        for label, command in (("queue list", ("queue", "list")), ("queue list --json", ("queue", "list", "--json")),
                               ("queue status --json", ("queue", "status", "--json"))):
            results = [run(data_dir, *command) for _ in range(args.runs)]
            best = min(results)
            print(f"{label:<22} {best[0]:6.2f} s   cpu {best[3]:5.2f} s   peak RSS {max(r[1] for r in results):6.1f} MB"
                  f"   output {best[2] / 1e6:.1f} MB   (best of {len(results)}; load {os.getloadavg()[0]:.1f})")
    return 0
