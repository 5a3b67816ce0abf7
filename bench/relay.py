"""Relay component benchmark: ``python -m bench relay [options]``.

Owns: starting Postfix's ``smtp-sink`` on a free loopback port, pushing N
messages of S bytes through ``delivery.relay.Relay.deliver_message`` from T
threads to one destination or to D destinations (static routes, so no DNS),
and printing msgs/s, per-message delivery latency (p50/p99), and CPU ms per
message of this process and of smtp-sink.

Must not: touch the spool or the broker. This measures the relay component
alone (SMTP client, pooling, limits); the end-to-end figure through the
pipeline and RabbitMQ is ``--e2e`` (``bench/relay_e2e.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

from mailpipe.delivery.relay import Relay
from mailpipe.core.config import DnsConfig, RelayConfig


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench relay", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=5120, help="message size in bytes")
    parser.add_argument("--threads", type=int, default=20, help="concurrent deliveries")
    parser.add_argument("--destinations", type=int, default=1, help="distinct recipient domains")
    parser.add_argument("--sink", default=shutil.which("smtp-sink") or "/usr/sbin/smtp-sink")
    parser.add_argument("--no-reuse", action="store_true", help="one SMTP session per message")
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_sink(path: str, port: int) -> subprocess.Popen:
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([path, *user, "-c", f"127.0.0.1:{port}", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("smtp-sink did not start")


def _message(size: int, i: int) -> bytes:
    head = f"From: bench@local.test\r\nTo: rcpt@d0.bench\r\nSubject: bench {i}\r\nMessage-ID: <{i}@bench>\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return head.encode() + body


def _sink_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(relay: Relay, args: argparse.Namespace) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    counter = iter(range(args.messages))

    def take() -> int | None:
        with lock:
            return next(counter, None)

    def worker() -> None:
        nonlocal failures
        while (i := take()) is not None:
            started = time.perf_counter()
            results = relay.deliver_message("bench@local.test", [f"rcpt{i}@d{i % args.destinations}.bench"],
                                            _message(args.size, i), f"B{i}")
            with lock:
                latencies.append(time.perf_counter() - started)
                failures += sum(r.status != "sent" for r in results)

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures


def main(argv: list[str]) -> int:
    if "--e2e" in argv:                    # the end-to-end benchmark through `mailpipe serve`
        from bench import relay_e2e
        return relay_e2e.main([a for a in argv if a != "--e2e"])
    args = _args(argv)
    if not shutil.which(args.sink):
        print(f"smtp-sink not found at {args.sink} (Debian package postfix)", file=sys.stderr)
        return 2
    port = _free_port()
    sink = _start_sink(args.sink, port)
    try:
        routes = {f"d{i}.bench": f"127.0.0.1:{port}" for i in range(args.destinations)}
        cfg = RelayConfig(static_routes=routes, connection_cache_time=0 if args.no_reuse else 5.0)
        relay = Relay(cfg, DnsConfig(), "bench.local.test")
        sink_cpu0, cpu0, wall0 = _sink_cpu(sink.pid), time.process_time(), time.perf_counter()
        latencies, failures = _run(relay, args)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        sink_cpu = _sink_cpu(sink.pid) - sink_cpu0
        relay.close()
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    _report(args, latencies, failures, wall, cpu, sink_cpu)
    return 0 if failures == 0 else 1


def _report(args, latencies: list[float], failures: int, wall: float, cpu: float, sink_cpu: float) -> None:
    n = len(latencies)
    ordered = sorted(latencies)
    p99 = ordered[min(n - 1, int(n * 0.99))] if n else 0.0
    print(f"relay component: {n} messages of {args.size} B, {args.threads} threads, "
          f"{args.destinations} destination(s), reuse={'off' if args.no_reuse else 'on'}")
    print(f"  {n / wall:.0f} msgs/s in {wall:.2f} s; failures {failures}")
    print(f"  latency p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    print(f"  CPU ms/msg: relay process {cpu * 1000 / max(n, 1):.2f}, smtp-sink {sink_cpu * 1000 / max(n, 1):.2f}")
