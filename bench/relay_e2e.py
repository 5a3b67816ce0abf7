"""End-to-end relay benchmark: ``python -m bench relay --e2e [options]``.

Owns: a throw-away ``mailpipe serve`` (RabbitMQ by default, or the embedded
broker) relaying to Postfix's ``smtp-sink`` on loopback through static routes
(one destination, or D destinations ``d0.bench`` .. ``d{D-1}.bench`` that all
point at the sink), an smtplib load of N messages of S bytes over C sessions
from a trusted network, and the report: end-to-end msgs/s (first SMTP
connection to the last message finished in the spool), p50/p99 queue time
(arrival in the spool to the ``done`` trace event), accept rate, failures, and
CPU ms per message of the mailpipe process tree (split into ingress and
worker processes), RabbitMQ and smtp-sink.
With ``--reference postfix`` the same load then goes through a throw-away
Postfix (``bench/postfix_ref.py``) to the same sink, in the same run.

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

from bench import procstats


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench relay --e2e", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=5000)
    parser.add_argument("-s", "--size", type=int, default=5120)
    parser.add_argument("-c", "--sessions", type=int, default=20, help="concurrent SMTP sessions")
    parser.add_argument("--per-session", type=int, default=50, help="messages per SMTP session")
    parser.add_argument("--destinations", type=int, default=1)
    parser.add_argument("--broker", choices=["rabbitmq", "embedded"], default="rabbitmq")
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--worker-processes", type=int, default=1)
    parser.add_argument("--ingress-processes", type=int, default=1, help="[ingress] processes (serve's default: 1)")
    parser.add_argument("--publish-threads", type=int, default=None, help="[ingress] publish_threads")
    parser.add_argument("--worker-nice", type=int, default=None, help="[worker] nice (default: serve's)")
    parser.add_argument("--fs-settle", type=float, default=120.0,
                        help="wait up to this long (s) for file creation to be cheap again before the run")
    parser.add_argument("--in-flow-delay", type=float, default=None,
                        help="[ingress] in_flow_delay (default: the server's); 0 = no flow control")
    parser.add_argument("--no-filters", action="store_true", help="[pipeline] filters = [] (no filter stages)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--reference", choices=["none", "postfix"], default="none",
                        help="also run the same load through a throw-away Postfix relaying to the same sink")
    parser.add_argument("--sink", default=shutil.which("smtp-sink") or "/usr/sbin/smtp-sink")
    return parser.parse_args(argv)


def _message(i: int, size: int, rcpt: str) -> bytes:
    head = (f"From: bench@local.bench\r\nTo: {rcpt}\r\nSubject: relay bench {i}\r\n"
            f"Message-ID: <relay-{i}-{time.time_ns()}@local.bench>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n"
    return head + (line * (size // len(line) + 1))[: max(0, size - len(head))]


def _config(args, work: Path, sink_port: int, broker_url: str) -> Path:
    from bench.smtp import free_port
    routes = ", ".join(f'"d{i}.bench" = "127.0.0.1:{sink_port}"' for i in range(args.destinations))
    args.port = free_port()
    path = work / "bench.toml"
    path.write_text(
        f'broker_url = "{broker_url}"\nlog_level = "WARNING"\nhostname = "relay.bench"\n'
        f'[ingress]\nsmtp_port = {args.port}\nsubmission_port = {free_port()}\nsmtps_port = {free_port()}\n'
        f'trusted_networks = ["127.0.0.1/32"]\nprocesses = {args.ingress_processes}\n'
        + (f"in_flow_delay = {args.in_flow_delay}\n" if args.in_flow_delay is not None else "")
        + (f"publish_threads = {args.publish_threads}\n" if args.publish_threads is not None else "") +
        '[imap]\nenabled = false\n[pop3]\nenabled = false\n[metrics]\nenabled = false\n'
        f'[worker]\nconcurrency = {args.worker_threads}\nprocesses = {args.worker_processes}\n'
        + (f"nice = {args.worker_nice}\n" if args.worker_nice is not None else "")
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
        entry = procstats.done_entry(path)
        done = [e["at"] for e in entry["trace"] if e["event"] == "done"]
        if done:
            times.append(done[-1] - entry["received_at"])
        failed += sum(r["status"] != "delivered" for r in entry["recipients"])
    return times, failed


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds per group, including children each process has reaped (Postfix's short-lived ones)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {}
    for name, pids in groups.items():
        total = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += sum(int(f) for f in fields[11:15])
            except (OSError, ValueError):
                pass
        totals[name] = total / tick
    return totals


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


class SpoolProbe:
    """Finished messages and their queue times, read from a mailpipe spool's done/ folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def mark(self) -> set[str]:
        return {p.name for p in _done(self.data_dir)}

    def finished(self, mark: set[str]) -> int:
        return len(_done(self.data_dir)) - len(mark)

    def times(self, mark: set[str]) -> tuple[list[float], int]:
        return _queue_times([p for p in _done(self.data_dir) if p.name not in mark])


class PostfixProbe:
    """Finished messages and their queue times (``delay=``), read from the reference Postfix's log."""

    def __init__(self, postfix) -> None:
        self.postfix = postfix

    def mark(self) -> int:
        return len(self.postfix.sent())

    def finished(self, mark: int) -> int:
        return len(self.postfix.sent()) - mark

    def times(self, mark: int) -> tuple[list[float], int]:
        return self.postfix.sent()[mark:], 0


def _wait_done(probe, mark, target: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = probe.finished(mark)
    while count < target and time.monotonic() < deadline:
        time.sleep(0.1)
        count = probe.finished(mark)
    return count


def _load(args, probe, groups_fn, n: int, offset: int) -> dict:
    mark = probe.mark()
    indices = list(range(offset, offset + n))
    accepted: list[int] = []
    errors: list[str] = []
    cpu0, t0 = _cpu(groups_fn()), time.perf_counter()
    threads = [threading.Thread(target=_send, args=(args, indices[i::args.sessions], accepted, errors))
               for i in range(args.sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.timeout)
    accept_s = time.perf_counter() - t0
    finished = _wait_done(probe, mark, len(accepted), args.timeout)
    e2e_s = time.perf_counter() - t0
    cpu1 = _cpu(groups_fn())
    times, failed = probe.times(mark)
    per_msg = {f"cpu_ms_per_msg_{k}": round((cpu1[k] - cpu0[k]) * 1000 / max(1, finished), 2) for k in cpu0}
    return {"messages": n, "size": args.size, "destinations": args.destinations,
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
    from bench.smtp import _wait_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    proc = subprocess.Popen([sys.executable, "-m", "mailpipe.ops", "--config", str(config), "--data-dir", str(data_dir),
                             "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port("127.0.0.1", port, 60)
    return proc


def _mailpipe(args, sink, sink_port: int, work: Path, vhost: str | None) -> dict:
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}" if vhost else "spool://"
    serve = _serve(_config(args, work, sink_port, broker), work / "data", args.port)
    try:
        groups = lambda: {**_roles(procstats.tree([serve.pid])), "sink": [sink.pid],  # noqa: E731
                          **({"rabbitmq": _broker_pids()} if vhost else {})}
        probe = SpoolProbe(work / "data")
        fs_create_ms = procstats.wait_for_quiet_fs(work / "data" / "spool" / "queue", timeout=args.fs_settle)
        if args.warmup:
            _load(args, probe, groups, args.warmup, 10_000_000)
        result = _load(args, probe, groups, args.messages, 0)
        result["cpu_ms_per_msg_mailpipe"] = round(result["cpu_ms_per_msg_ingress"]
                                                  + result["cpu_ms_per_msg_worker"], 2)
        return {"system": "mailpipe", "broker": args.broker, "fs_create_ms_before": fs_create_ms, **result}
    finally:
        _end(serve)


def _roles(pids: list[int]) -> dict[str, list[int]]:
    """mailpipe's process tree split into worker processes and the rest (ingress, scheduler)."""
    def is_worker(pid: int) -> bool:
        try:
            return b"\0worker\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    workers = [pid for pid in pids if is_worker(pid)]
    return {"ingress": [pid for pid in pids if pid not in workers], "worker": workers}


def _postfix(args, sink, sink_port: int) -> dict:
    from bench.postfix_ref import PostfixRef
    from bench.relay import _free_port
    args.port = _free_port()
    with PostfixRef(sink_port, args.port) as postfix:
        from bench.smtp import _wait_port
        _wait_port("127.0.0.1", args.port, 60)
        groups = lambda: {"postfix": procstats.tree([postfix.proc.pid]), "sink": [sink.pid]}  # noqa: E731
        probe = PostfixProbe(postfix)
        if args.warmup:
            _load(args, probe, groups, args.warmup, 10_000_000)
        return {"system": "postfix", **_load(args, probe, groups, args.messages, 0)}


def main(argv: list[str]) -> int:
    from bench.relay import _free_port, _start_sink
    args = _args(argv)
    if not shutil.which(args.sink):
        print(f"smtp-sink not found at {args.sink} (Debian package postfix)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="mprelaybench-"))
    vhost = _vhost() if args.broker == "rabbitmq" else None
    sink_port = _free_port()
    sink = _start_sink(args.sink, sink_port)
    results = []
    try:
        results.append(_mailpipe(args, sink, sink_port, work, vhost))
        if args.reference == "postfix":
            results.append(_postfix(args, sink, sink_port))
    finally:
        _end(sink)
        if vhost:
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    ok = all(r["finished"] == args.messages and not r["not_delivered"] for r in results)
    return 0 if ok else 1


def _end(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
