"""SMTP benchmark: N messages of S bytes over C concurrent sessions, accept and end-to-end rates.

    python -m bench smtp --start [--broker embedded|rabbitmq] [--queue-type classic|quorum] [-n 5000] [-s 5120] [-c 20]
    python -m bench smtp --port 2525 --data-dir DIR --server-pid PID ...   (a server already running)

With ``--start`` it creates a throw-away data directory (and RabbitMQ vhost),
100 users, starts ``mailpipe serve`` on free ports, measures and stops it.
Reports: accept rate, end-to-end rate into the Maildirs, p50/p99 accept latency
(DATA end to 250), server CPU ms per message (the mailpipe process tree plus
RabbitMQ's when used) and peak RSS of the server processes (sampled every
0.5 s, first and last quarter compared to show whether memory grows).
Every loop is bounded by count and by ``--timeout`` seconds.
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


def make_message(index: int, size: int, rcpt: str) -> bytes:
    head = (f"From: bench@remote.test\r\nTo: {rcpt}\r\nSubject: bench {index}\r\n"
            f"Message-ID: <bench-{index}-{time.time_ns()}@remote.test>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head + body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sender_thread(args, indices: list[int], latencies: list[float], errors: list[str]) -> None:
    per_session = args.per_session
    for start in range(0, len(indices), per_session):
        try:
            with smtplib.SMTP(args.host, args.port, timeout=60) as smtp:
                smtp.ehlo("bench.remote.test")
                for i in indices[start:start + per_session]:
                    rcpt = f"user{i % args.users}@bench.test"
                    t0 = time.perf_counter()
                    smtp.sendmail("bench@remote.test", [rcpt], make_message(i, args.size, rcpt))
                    latencies.append(time.perf_counter() - t0)
        except (smtplib.SMTPException, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")


def count_delivered(data_dir: Path) -> int:
    total = 0
    for new in (data_dir / "mail" / "bench.test").glob("*/Maildir/new"):
        total += len(os.listdir(new))
    return total


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def run_load(args, data_dir: Path, pids_fn) -> dict:
    indices = list(range(args.n))
    shards = [indices[i::args.c] for i in range(args.c)]
    latencies: list[float] = []
    errors: list[str] = []
    sampler = procstats.Sampler(pids_fn)
    broker_pids = procstats.rabbitmq_pids() if args.broker == "rabbitmq" else []
    own = procstats.Sampler(lambda: [p for p in pids_fn() if p not in broker_pids])   # without RabbitMQ
    sampler.start()
    own.start()
    ingress_pids = args.roots + [p for p in procstats.tree(args.roots) if _is_ingress(p)]
    cpu0 = procstats.cpu_seconds(pids_fn())
    roots0 = procstats.cpu_seconds(ingress_pids)
    broker0 = procstats.cpu_seconds(broker_pids)
    daemon_pids = procstats.tree(args.daemon_pids) if args.daemon_pids else []
    daemons0 = procstats.cpu_seconds(daemon_pids)
    before = count_delivered(data_dir)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=sender_thread, args=(args, s, latencies, errors)) for s in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout)
    accept_s = time.perf_counter() - t0
    delivered = 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        delivered = count_delivered(data_dir) - before
        if delivered >= len(latencies):
            break
        time.sleep(0.05)
    e2e_s = time.perf_counter() - t0
    cpu = procstats.cpu_seconds(pids_fn()) - cpu0
    roots_cpu = procstats.cpu_seconds(ingress_pids) - roots0
    broker_cpu = procstats.cpu_seconds(broker_pids) - broker0
    daemons_cpu = procstats.cpu_seconds(daemon_pids) - daemons0
    sampler.stop()
    own.stop()
    return {"messages": args.n, "size": args.size, "sessions": args.c, "accepted": len(latencies),
            "delivered": delivered, "errors": len(errors), "first_error": errors[0] if errors else None,
            "accept_rate": round(len(latencies) / accept_s, 1), "e2e_rate": round(delivered / e2e_s, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "server_cpu_ms_per_msg": round(cpu * 1000 / max(1, delivered), 2),
            "ingress_cpu_ms_per_msg": round(roots_cpu * 1000 / max(1, delivered), 2),
            "broker_cpu_ms_per_msg": round(broker_cpu * 1000 / max(1, delivered), 2),
            "workers_and_daemons_cpu_ms_per_msg": round((cpu - roots_cpu - broker_cpu) * 1000 / max(1, delivered), 2),
            "daemons_cpu_ms_per_msg": round(daemons_cpu * 1000 / max(1, delivered), 2),
            "rss_mb_peak": sampler.peak_mb, "rss_mb_first_quarter": sampler.quarter_mb(0),
            "rss_mb_last_quarter": sampler.quarter_mb(-1),
            "mailpipe_rss_mb_first_quarter": own.quarter_mb(0), "mailpipe_rss_mb_last_quarter": own.quarter_mb(-1)}


def _is_ingress(pid: int) -> bool:
    """An extra ingress process of ``serve`` (``[ingress] processes`` > 1)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"\0ingress\0" in handle.read()
    except OSError:
        return False


def stage_latencies(data_dir: Path) -> dict:
    """Per-stage latency (ms) from the traces of finished messages."""
    times: dict[str, list[float]] = {}
    for path in (data_dir / "spool" / "done").glob("*.json"):
        for event in procstats.done_entry(path).get("trace", []):
            if event.get("ms") is not None:
                times.setdefault(event["stage"], []).append(event["ms"])
    return {stage: {"n": len(v), "mean_ms": round(sum(v) / len(v), 2), "p50_ms": round(percentile(v, 0.5), 2),
                    "p99_ms": round(percentile(v, 0.99), 2)} for stage, v in times.items()}


def filter_toml(args, data_dir: Path) -> str:
    """Config lines for the real filters asked for with --filters (daemons from tools.avspam)."""
    if not args.filters:
        return ""
    wanted = set(args.filters.split(","))
    lines = [f"[pipeline]\nfilters = {json.dumps(sorted(wanted, key=['antivirus', 'spam', 'rules'].index))}\n"]
    if wanted & {"antivirus", "spam"}:
        from tools import avspam
        args.daemons_dir = Path(tempfile.mkdtemp(prefix="mpav"))
        if "spam" in wanted:
            daemons = avspam.start(args.daemons_dir)
            lines.append(f'[spam]\nspamd = "{daemons.spamd_unix}"\n')
        else:           # clamd alone: an idle spamd (and its start-up) would count as filter cost
            avspam.start_clamd(args.daemons_dir)
            daemons = avspam.Daemons(args.daemons_dir.absolute(), 0, 0)
            avspam.wait_clamd(daemons.clamd_unix)
        if "antivirus" in wanted:
            lines.append(f'[antivirus]\nclamd = "{daemons.clamd_unix}"\n')
        args.daemon_pids = [p for p in (avspam._pid(args.daemons_dir / "clamd.pid"),
                                        avspam._pid(args.daemons_dir / "spamd.pid")) if p]
    if "rules" in wanted:
        rules = data_dir / "rules.toml"
        rules.write_text('[[rule]]\nname = "promo"\naction = "junk"\n[rule.when]\nbody_keyword = "khuyến mãi"\n'
                         '[[rule]]\nname = "blocked"\naction = "reject"\n[rule.when]\nclient_ip = "203.0.113.0/24"\n',
                         encoding="utf-8")
        lines.append(f'[rules]\nfile = "{rules}"\n')
    return "".join(lines)


def start_server(args) -> tuple[subprocess.Popen, Path, str | None, dict]:
    data_dir = Path(tempfile.mkdtemp(prefix="mpbench-"))
    env = dict(os.environ, MAILPIPE_DATA_DIR=str(data_dir))
    vhost = None
    broker = 'broker_url = "spool://"'
    if args.broker == "rabbitmq":
        vhost = f"mpbench{os.getpid()}"
        subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True)
        broker = f'broker_url = "amqp://guest:guest@127.0.0.1:5672/{vhost}"'
    args.port = free_port()
    config = data_dir / "bench.toml"
    config.write_text(f'{broker}\nlog_level = "WARNING"\n[ingress]\nsmtp_port = {args.port}\n'
                      f'submission_port = {free_port()}\nsmtps_port = {free_port()}\n'
                      f'processes = {args.ingress_processes}\n'
                      + (f'publish_threads = {args.publish_threads}\n' if args.publish_threads is not None else '') +
                      f'[imap]\nenabled = false\n[pop3]\nenabled = false\n[metrics]\nenabled = false\n'
                      f'[worker]\nconcurrency = {args.worker_threads}\nprocesses = {args.worker_processes}\nnice = {args.worker_nice}\n'
                      + filter_toml(args, data_dir)
                      + f'[broker]\nqueue_type = "{args.queue_type}"\n')
    mp = [sys.executable, "-m", "mailpipe.ops", "--config", str(config)]
    subprocess.run(mp + ["domain", "add", "bench.test"], env=env, check=True, capture_output=True)
    _bulk_users(data_dir, args.users)
    proc = subprocess.Popen(mp + ["serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(args.host, args.port, 30)
    return proc, data_dir, vhost, env


def _bulk_users(data_dir: Path, users: int) -> None:
    """Add the users directly, with a cheap argon2 cost (benchmark accounts only)."""
    from argon2 import PasswordHasher

    from mailpipe.mailstore.directory import open_directory
    directory = open_directory(f"sqlite:///{data_dir.resolve() / 'mailpipe.db'}",
                          hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    existing = set(directory.users())
    for i in range(users):
        if f"user{i}@bench.test" not in existing:
            directory.add_user(f"user{i}@bench.test", "pw")
    directory.close()


def _wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server did not listen on {host}:{port} within {timeout}s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench smtp", description=__doc__.split("\n")[0])
    parser.add_argument("--start", action="store_true", help="start a throw-away server")
    parser.add_argument("--broker", choices=["embedded", "rabbitmq"], default="embedded")
    parser.add_argument("--queue-type", choices=["classic", "quorum"], default="classic",
                        help="[broker] queue_type of the started server (RabbitMQ)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--data-dir", type=Path, help="data dir of a running server (to count deliveries)")
    parser.add_argument("--server-pid", type=int, action="append", default=[], help="server PIDs (tree) for CPU/RSS")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("-s", "--size", type=int, default=5120)
    parser.add_argument("-c", type=int, default=20)
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument("--worker-processes", type=int, default=1)
    parser.add_argument("--ingress-processes", type=int, default=1, help="[ingress] processes of the started server (serve's default: 1)")
    parser.add_argument("--fs-settle", type=float, default=120.0,
                        help="wait up to this long (s) for file creation to be cheap again before the run")
    parser.add_argument("--publish-threads", type=int, default=None, help="[ingress] publish_threads")
    parser.add_argument("--worker-nice", type=int, default=10, help="[worker] nice of the started server")
    parser.add_argument("--filters", default="", help="real filters to run: antivirus,spam,rules "
                        "(clamd/spamd started with tools.avspam; their CPU is counted)")
    args = parser.parse_args(argv)
    args.daemons_dir, args.daemon_pids = None, []
    proc = vhost = None
    if args.start:
        proc, data_dir, vhost, _ = start_server(args)
        roots = [proc.pid]
    else:
        if args.data_dir is None:
            parser.error("--data-dir is required without --start")
        data_dir, roots = args.data_dir, args.server_pid
    with_broker = args.broker == "rabbitmq"
    args.roots = roots

    def pids() -> list[int]:
        found = procstats.tree(roots + args.daemon_pids)
        return found + (procstats.rabbitmq_pids() if with_broker else [])
    try:
        (data_dir / "spool" / "queue").mkdir(parents=True, exist_ok=True)   # a database spool has none
        fs_create_ms = procstats.wait_for_quiet_fs(data_dir / "spool" / "queue", timeout=args.fs_settle)
        if args.warmup:
            warm = argparse.Namespace(**{**vars(args), "n": args.warmup})
            run_load(warm, data_dir, pids)
        result = run_load(args, data_dir, pids)
        result["fs_create_ms_before"] = fs_create_ms
        result["broker"] = args.broker
        result["filters"] = args.filters or "pass-through"
        result["stages"] = stage_latencies(data_dir)
        print(json.dumps(result, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
            shutil.rmtree(data_dir, ignore_errors=True)
        if vhost:
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)
        if args.daemons_dir:
            from tools import avspam
            avspam.stop(args.daemons_dir)
            shutil.rmtree(args.daemons_dir, ignore_errors=True)
    return 0
