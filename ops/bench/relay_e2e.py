"""End-to-end relay benchmark: ``python -m ops.bench relay --e2e [options]``.

Owns: a throw-away ``mailpipe serve`` (RabbitMQ by default, or the embedded
broker) relaying to Postfix's ``smtp-sink`` on loopback through static routes
(one destination, or D destinations ``d0.bench`` .. ``d{D-1}.bench`` that all
point at the sink), an smtplib load of N messages of S bytes over C sessions
from a trusted network, and the report: end-to-end msgs/s (first SMTP
connection to the last message finished in the spool), p50/p99 queue time
(arrival in the spool to the ``done`` trace event), accept rate, failures, and
CPU ms per message of the mailpipe process tree, RabbitMQ and smtp-sink.

Must not: reuse a real data directory or vhost (both are created and removed),
or run any loop without a bound in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ops.bench import procstats


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.bench relay --e2e", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=5000)
    parser.add_argument("-s", "--size", type=int, default=5120)
    parser.add_argument("-c", "--sessions", type=int, default=20, help="concurrent SMTP sessions")
    parser.add_argument("--per-session", type=int, default=50, help="messages per SMTP session")
    parser.add_argument("--destinations", type=int, default=1)
    parser.add_argument("--broker", choices=["rabbitmq", "embedded"], default="rabbitmq")
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument("--no-filters", action="store_true", help="[pipeline] filters = [] (no filter stages)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--sink", default=shutil.which("smtp-sink") or "/usr/sbin/smtp-sink")
    return parser.parse_args(argv)


def _message(i: int, size: int, rcpt: str) -> bytes:
    head = (f"From: bench@local.bench\r\nTo: {rcpt}\r\nSubject: relay bench {i}\r\n"
            f"Message-ID: <relay-{i}-{time.time_ns()}@local.bench>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n"
    return head + (line * (size // len(line) + 1))[: max(0, size - len(head))]


def _config(args, work: Path, sink_port: int, broker_url: str) -> Path:
    from ops.bench.smtp import free_port
    routes = ", ".join(f'"d{i}.bench" = "127.0.0.1:{sink_port}"' for i in range(args.destinations))
    args.port = free_port()
    path = work / "bench.toml"
    path.write_text(
        f'broker_url = "{broker_url}"\nlog_level = "WARNING"\nhostname = "relay.bench"\n'
        f'[ingress]\nsmtp_port = {args.port}\nsubmission_port = {free_port()}\nsmtps_port = {free_port()}\n'
        'trusted_networks = ["127.0.0.1/32"]\n'
        '[imap]\nenabled = false\n[pop3]\nenabled = false\n[metrics]\nenabled = false\n'
        f'[worker]\nconcurrency = {args.worker_threads}\nprocesses = {args.worker_processes}\n'
        + ("[pipeline]\nfilters = []\n" if args.no_filters else "")
        + f"[relay]\nstatic_routes = {{ {routes} }}\nconnection_cache_time = 5.0\n")
    return path


def _send(args, indices: list[int], accepted: list[int], errors: list[str]) -> None:
    deadline = time.monotonic() + args.timeout
    for start in range(0, len(indices), args.per_session):
        if time.monotonic() > deadline:
            errors.append("timeout")
            return
        try:
            with smtplib.SMTP("127.0.0.1", args.port, timeout=60) as smtp:
                smtp.ehlo("load.local.bench")
                for i in indices[start:start + args.per_session]:
                    rcpt = f"rcpt{i}@d{i % args.destinations}.bench"
                    smtp.sendmail("bench@local.bench", [rcpt], _message(i, args.size, rcpt))
                    accepted.append(i)
        except (smtplib.SMTPException, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")


def _done(data_dir: Path) -> list[Path]:
    folder = data_dir / "spool" / "done"
    return list(folder.iterdir()) if folder.is_dir() else []


def _queue_times(paths: list[Path]) -> tuple[list[float], int]:
    """Seconds from arrival to done for each finished entry, and recipients not delivered."""
    times, failed = [], 0
    for path in paths:
        entry = json.loads(path.read_text())
        done = [e["at"] for e in entry["trace"] if e["event"] == "done"]
        if done:
            times.append(done[-1] - entry["received_at"])
        failed += sum(r["status"] != "delivered" for r in entry["recipients"])
    return times, failed


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def _wait_done(data_dir: Path, before: int, target: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = len(_done(data_dir)) - before
    while count < target and time.monotonic() < deadline:
        time.sleep(0.1)
        count = len(_done(data_dir)) - before
    return count


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: procstats.cpu_seconds(pids) for name, pids in groups.items()}


def _broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM only (not rabbitmqctl runs that come and go during the measurement)."""
    pids = []
    for pid in procstats.rabbitmq_pids():
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip().startswith("beam"):
                    pids.append(pid)
        except OSError:
            pass
    return pids


def _load(args, data_dir: Path, groups_fn, n: int, offset: int) -> dict:
    before_names = {p.name for p in _done(data_dir)}
    indices = list(range(offset, offset + n))
    accepted: list[int] = []
    errors: list[str] = []
    groups = groups_fn()
    cpu0, t0 = _cpu(groups), time.perf_counter()
    threads = [threading.Thread(target=_send, args=(args, indices[i::args.sessions], accepted, errors))
               for i in range(args.sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.timeout)
    accept_s = time.perf_counter() - t0
    finished = _wait_done(data_dir, len(before_names), len(accepted), args.timeout)
    e2e_s = time.perf_counter() - t0
    cpu1 = _cpu(groups)
    times, failed = _queue_times([p for p in _done(data_dir) if p.name not in before_names])
    per_msg = {f"cpu_ms_per_msg_{k}": round((cpu1[k] - cpu0[k]) * 1000 / max(1, finished), 2) for k in cpu0}
    return {"messages": n, "size": args.size, "destinations": args.destinations, "broker": args.broker,
            "accepted": len(accepted), "finished": finished, "not_delivered": failed,
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "accept_rate": round(len(accepted) / accept_s, 1), "e2e_rate": round(finished / e2e_s, 1),
            "queue_time_p50_ms": round(_percentile(times, 0.5) * 1000, 1),
            "queue_time_p99_ms": round(_percentile(times, 0.99) * 1000, 1),
            **per_msg, "cpu_ms_per_msg_total": round(sum((cpu1[k] - cpu0[k]) for k in cpu0) * 1000
                                                      / max(1, finished), 2)}


def _vhost() -> str:
    vhost = f"mprelaybench{os.getpid()}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return vhost


def _serve(config: Path, data_dir: Path, port: int) -> subprocess.Popen:
    from ops.bench.smtp import _wait_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    proc = subprocess.Popen([sys.executable, "-m", "ops", "--config", str(config), "--data-dir", str(data_dir),
                             "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port("127.0.0.1", port, 60)
    return proc


def main(argv: list[str]) -> int:
    from ops.bench.relay import _free_port, _start_sink
    args = _args(argv)
    if not shutil.which(args.sink):
        print(f"smtp-sink not found at {args.sink} (Debian package postfix)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="mprelaybench-"))
    vhost = _vhost() if args.broker == "rabbitmq" else None
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}" if vhost else "spool://"
    sink_port = _free_port()
    sink = _start_sink(args.sink, sink_port)
    serve = None
    try:
        serve = _serve(_config(args, work, sink_port, broker), work / "data", args.port)
        groups = lambda: {"mailpipe": procstats.tree([serve.pid]), "sink": [sink.pid],  # noqa: E731
                          **({"rabbitmq": _broker_pids()} if vhost else {})}
        if args.warmup:
            _load(args, work / "data", groups, args.warmup, 10_000_000)
        result = _load(args, work / "data", groups, args.messages, 0)
        print(json.dumps(result, indent=2))
        return 0 if result["finished"] == args.messages and not result["not_delivered"] else 1
    finally:
        _stop(serve, sink, vhost, work)


def _stop(serve, sink, vhost: str | None, work: Path) -> None:
    for proc in (serve, sink):
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if vhost:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
