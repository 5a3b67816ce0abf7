"""Local delivery latency beside a stalled, capped remote destination: ``python -m bench stalled_destination``.

Owns: a throw-away ``mailpipe serve`` (embedded broker by default) with one
local domain and one remote destination (``stall.bench``, a static route to a
stalling SMTP server in this process that accepts the envelope and then holds
its reply to the final "." for up to ``--stall`` seconds), capped at
``[relay] max_per_destination = 2``. Two phases on the same server:

1. baseline: after ``--warmup`` local messages, ``-n`` local messages, paced at ``--rate`` per second;
2. stalled: ``--remote`` messages for the stalled destination (both slots stall,
   the rest find no free slot), then the same local load.

It prints the queue time (spool arrival to ``done``) p50/p99 of the local
messages in each phase and the ratio of the p99s (issue 17.11 asks <= 1.5).

Must not: reuse a real data directory, or run any loop without a bound in
count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import procstats
from bench.smtp import _wait_port, free_port

LOCAL = "u@local.bench"


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench stalled_destination", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=200, help="local messages per phase")
    parser.add_argument("--rate", type=float, default=20.0, help="local messages per second")
    parser.add_argument("--warmup", type=int, default=50, help="local messages before the baseline (not measured)")
    parser.add_argument("--remote", type=int, default=30, help="messages for the stalled destination")
    parser.add_argument("--stall", type=float, default=120.0, help="longest hold of a final '.' (s)")
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--broker", choices=["embedded", "rabbitmq"], default="embedded")
    parser.add_argument("--sweep-interval", type=float, default=None, help="[pipeline] sweep_interval (default: serve's)")
    parser.add_argument("--timeout", type=float, default=300.0)
    return parser.parse_args(argv)


class StallingSmtp:
    """SMTP on 127.0.0.1: answers the envelope, holds the final '.' until released or ``stall`` s."""

    def __init__(self, stall: float) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port, self.stall = self.sock.getsockname()[1], stall
        self.release, self.stop = threading.Event(), threading.Event()
        self.stalled = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"220 stall.bench ESMTP\r\n")
                in_data = False
                for _ in range(1_000_000):
                    line = lines.readline().rstrip(b"\r\n")
                    if not line and not in_data:
                        return
                    if in_data:
                        if line == b".":
                            self._hold()
                            conn.sendall(b"250 2.0.0 queued\r\n")
                            in_data = False
                        continue
                    verb = line[:4].upper()
                    in_data = verb == b"DATA"
                    conn.sendall({b"EHLO": b"250-stall.bench\r\n250 8BITMIME\r\n", b"DATA": b"354 go ahead\r\n",
                                  b"QUIT": b"221 bye\r\n"}.get(verb, b"250 2.0.0 ok\r\n"))
                    if verb == b"QUIT":
                        return
        except OSError:
            return

    def _hold(self) -> None:
        with self.lock:
            self.stalled += 1
        self.release.wait(self.stall)
        with self.lock:
            self.stalled -= 1

    def close(self) -> None:
        self.release.set()
        self.stop.set()
        self.sock.close()


def _config(args, work: Path, stall_port: int, broker: str) -> Path:
    args.port = free_port()
    path = work / "bench.toml"
    path.write_text(
        f'broker_url = "{broker}"\nlog_level = "WARNING"\nhostname = "mx.local.bench"\n'
        f'[ingress]\nsmtp_port = {args.port}\nsubmission_port = {free_port()}\nsmtps_port = {free_port()}\n'
        'trusted_networks = ["127.0.0.1/32"]\n'
        '[imap]\nenabled = false\n[pop3]\nenabled = false\n[metrics]\nenabled = false\n'
        f'[worker]\nconcurrency = {args.worker_threads}\n'
        '[pipeline]\nfilters = []\n'
        + (f"sweep_interval = {args.sweep_interval}\n" if args.sweep_interval else "") +
        f'[relay]\nstatic_routes = {{ "stall.bench" = "127.0.0.1:{stall_port}" }}\n'
        'max_per_destination = 2\nconnection_cache_time = 0\n')
    return path


def _cli(config: Path, data: Path, *argv: str, stdin: bytes | None = None) -> None:
    subprocess.run([sys.executable, "-m", "mailpipe.ops", "--config", str(config), "--data-dir", str(data), *argv],
                   input=stdin, check=True, capture_output=True, timeout=120)


def _send(port: int, rcpts: list[str], rate: float, errors: list[str]) -> None:
    """One message per recipient, paced at ``rate`` per second, over one SMTP session."""
    start = time.monotonic()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.ehlo("load.bench")
            for i, rcpt in enumerate(rcpts):
                pause = start + i / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                smtp.sendmail("bench@local.bench", [rcpt], f"To: {rcpt}\r\nSubject: {i}\r\n\r\nhello\r\n".encode())
    except (smtplib.SMTPException, OSError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


def _done(data: Path) -> dict[str, Path]:
    folder = data / "spool" / "done"
    return {p.name: p for p in folder.iterdir()} if folder.is_dir() else {}


def _local_times(data: Path, mark: set[str], want: int, timeout: float) -> list[float]:
    """Queue times of local messages finished since ``mark``; waits (bounded) for ``want`` of them."""
    deadline = time.monotonic() + timeout
    times: dict[str, float] = {}
    while len(times) < want and time.monotonic() < deadline:
        for name, path in _done(data).items():
            if name in mark or name in times:
                continue
            entry = procstats.done_entry(path)
            if [r["address"] for r in entry["recipients"]] == [LOCAL]:
                done = [e["at"] for e in entry["trace"] if e["event"] == "done"]
                times[name] = done[-1] - entry["received_at"]
        time.sleep(0.1)
    return list(times.values())


def _phase(args, data: Path, n: int) -> dict:
    mark = set(_done(data))
    errors: list[str] = []
    _send(args.port, [LOCAL] * n, args.rate, errors)
    times = sorted(_local_times(data, mark, n, args.timeout))
    pct = lambda p: round(times[min(len(times) - 1, int(len(times) * p))] * 1000, 1) if times else None  # noqa: E731
    return {"local_delivered": len(times), "errors": len(errors), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "max_ms": round(times[-1] * 1000, 1) if times else None}


def _serve(config: Path, data: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    proc = subprocess.Popen([sys.executable, "-m", "mailpipe.ops", "--config", str(config), "--data-dir", str(data),
                             "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port("127.0.0.1", port, 60)
    return proc


def _run(args, work: Path, stall: StallingSmtp, broker: str) -> dict:
    data = work / "data"
    config = _config(args, work, stall.port, broker)
    _cli(config, data, "domain", "add", "local.bench")
    _cli(config, data, "user", "add", LOCAL, "--password-stdin", stdin=b"pw")
    serve = _serve(config, data, args.port)
    try:
        _phase(args, data, args.warmup)
        baseline = _phase(args, data, args.messages)
        errors: list[str] = []
        _send(args.port, [f"r{i}@stall.bench" for i in range(args.remote)], 1000.0, errors)
        deadline = time.monotonic() + 30
        while stall.stalled < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        stalled = _phase(args, data, args.messages)
        stalled["sessions_stalled"] = stall.stalled
        ratio = round(stalled["p99_ms"] / baseline["p99_ms"], 2) if baseline["p99_ms"] and stalled["p99_ms"] else None
        return {"baseline": baseline, "stalled_destination": stalled, "p99_ratio": ratio,
                "remote_messages": args.remote, "worker_threads": args.worker_threads, "broker": args.broker}
    finally:
        stall.release.set()
        serve.terminate()
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()


def main(argv: list[str]) -> int:
    args = _args(argv)
    work = Path(tempfile.mkdtemp(prefix="mpstallbench-"))
    stall = StallingSmtp(args.stall)
    vhost = None
    try:
        if args.broker == "rabbitmq":
            from bench.relay_e2e import _vhost
            vhost = _vhost()
        broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}" if vhost else "spool://"
        result = _run(args, work, stall, broker)
    finally:
        stall.close()
        if vhost:
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    ok = result["p99_ratio"] is not None and result["stalled_destination"]["local_delivered"] == args.messages
    return 0 if ok else 1
