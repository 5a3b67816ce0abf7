"""TLS benchmark: plaintext MX vs implicit TLS + AUTH PLAIN submission, and TLS connection setup rate.

    python -m bench tls [-n 3000] [-s 5120] [-c 20] [--per-session 50] [--setups 1000]

Starts a throw-away ``mailpipe serve`` (self-signed certificate, 100 users,
free ports), then in one run measures, after a warm-up of each kind:

1. plaintext accept rate: smtplib on the MX port, no AUTH;
2. TLS accept rate: ``SMTP_SSL`` on the SMTPS port, AUTH PLAIN as the user
   who sends (MAIL FROM its own address), same message count and size;
   (1 and 2 alternate in ABBA order over ``--rounds`` pairs, ``-n`` split evenly);
3. connection setup rate: connect + TLS handshake + EHLO + AUTH PLAIN + QUIT
   per second over ``-c`` concurrent clients.

Each accept run waits until the workers have delivered its messages before
the next run starts, so one run's delivery does not slow the next. Prints
JSON: both rates, their ratio (the issue asks for TLS >= 70% of plaintext),
setups/s, server CPU ms per message (whole process tree while accepting) and
the CPU of the main ``serve`` process (ingress) per message and per setup.
Every loop is bounded by count and by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import procstats
from bench.smtp import _bulk_users, _wait_port, count_delivered, free_port, make_message, percentile

PASSWORD = "pw"


def start_server(args) -> tuple[subprocess.Popen, Path, dict]:
    from mailpipe.ops.commands.tls import write_pair
    data_dir = Path(tempfile.mkdtemp(prefix="mpbench-tls-"))
    cert, key = write_pair(data_dir / "tls", "mail.bench.test")
    ports = {"smtp": free_port(), "submission": free_port(), "smtps": free_port()}
    config = data_dir / "bench.toml"
    config.write_text(
        f'broker_url = "spool://"\nlog_level = "WARNING"\nhostname = "mail.bench.test"\n'
        f'[ingress]\nsmtp_port = {ports["smtp"]}\nsubmission_port = {ports["submission"]}\n'
        f'smtps_port = {ports["smtps"]}\nmax_connections_per_ip = {args.c * 4}\n'
        f'max_messages_per_connection = {args.per_session + 10}\n'
        f'[tls]\ncert = "{cert}"\nkey = "{key}"\n[auth]\nplaintext_on_loopback = false\n'
        f'[imap]\nenabled = false\n[pop3]\nenabled = false\n[metrics]\nenabled = false\n'
        f'[worker]\nconcurrency = {args.worker_threads}\nprocesses = 1\n')
    env = dict(os.environ, MAILPIPE_DATA_DIR=str(data_dir))
    mp = [sys.executable, "-m", "mailpipe.ops", "--config", str(config)]
    subprocess.run(mp + ["domain", "add", "bench.test"], env=env, check=True, capture_output=True)
    _bulk_users(data_dir, args.users)
    proc = subprocess.Popen(mp + ["serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port("127.0.0.1", ports["smtps"], 30)
    return proc, data_dir, {"ports": ports, "cert": cert}


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False          # we connect to 127.0.0.1; the chain is still verified
    return context


def open_session(args, tls: bool, user: str) -> smtplib.SMTP:
    if not tls:
        smtp = smtplib.SMTP("127.0.0.1", args.ports["smtp"], timeout=60)
        smtp.ehlo("bench.remote.test")
        return smtp
    smtp = smtplib.SMTP_SSL("127.0.0.1", args.ports["smtps"], timeout=60, context=args.context)
    smtp.ehlo("bench.remote.test")
    smtp.login(user, PASSWORD)
    return smtp


def sender(args, tls: bool, indices: list[int], latencies: list[float], errors: list[str]) -> None:
    for start in range(0, len(indices), args.per_session):
        batch = indices[start:start + args.per_session]
        user = f"user{batch[0] % args.users}@bench.test"
        try:
            with open_session(args, tls, user) as smtp:
                for i in batch:
                    rcpt = f"user{i % args.users}@bench.test"
                    t0 = time.perf_counter()
                    smtp.sendmail(user if tls else "bench@remote.test", [rcpt], make_message(i, args.size, rcpt))
                    latencies.append(time.perf_counter() - t0)
        except (smtplib.SMTPException, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")


def setups(args, count: int, done: list[float], errors: list[str]) -> None:
    for i in range(count):
        t0 = time.perf_counter()
        try:
            with open_session(args, True, f"user{i % args.users}@bench.test"):
                pass                                          # __exit__ sends QUIT
            done.append(time.perf_counter() - t0)
        except (smtplib.SMTPException, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")


def timed(args, target, shards: list) -> tuple[float, tuple[float, float, float], list[float], list[str]]:
    """Run one thread per shard; (wall s, (server tree, main process, this client) CPU s, samples, errors)."""
    samples: list[float] = []
    errors: list[str] = []
    tree0, main0 = procstats.cpu_seconds(procstats.tree(args.roots)), procstats.cpu_seconds(args.roots)
    client0 = time.process_time()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=target, args=(shard, samples, errors)) for shard in shards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.timeout)
    wall = time.perf_counter() - t0
    cpu = (procstats.cpu_seconds(procstats.tree(args.roots)) - tree0, procstats.cpu_seconds(args.roots) - main0,
           time.process_time() - client0)
    return wall, cpu, samples, errors


def drain(args, expected: int) -> None:
    """Wait (bounded) until the workers delivered what was accepted, so runs do not overlap."""
    deadline = time.monotonic() + args.timeout
    while count_delivered(args.data_dir) < expected and time.monotonic() < deadline:
        time.sleep(0.2)


def accept_run(args, tls: bool, n: int) -> dict:
    shards = [list(range(n))[i::args.c] for i in range(args.c)]
    wall, (cpu, main_cpu, client_cpu), lat, errors = timed(args, lambda s, l, e: sender(args, tls, s, l, e),
                                                           shards)
    args.accepted_total += len(lat)
    drain(args, args.accepted_total)
    return {"accepted": len(lat), "errors": len(errors), "first_error": errors[0] if errors else None,
            "accept_rate": round(len(lat) / wall, 1), "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
            "server_cpu_ms_per_msg_during_accept": round(cpu * 1000 / max(1, len(lat)), 2),
            "ingress_process_cpu_ms_per_msg": round(main_cpu * 1000 / max(1, len(lat)), 2),
            "client_cpu_ms_per_msg": round(client_cpu * 1000 / max(1, len(lat)), 2)}


def setup_run(args, n: int) -> dict:
    shards = [n // args.c + (1 if i < n % args.c else 0) for i in range(args.c)]
    wall, (cpu, main_cpu, client_cpu), done, errors = timed(args, lambda count, d, e: setups(args, count, d, e),
                                                            shards)
    return {"setups": len(done), "errors": len(errors), "first_error": errors[0] if errors else None,
            "setups_per_s": round(len(done) / wall, 1), "p50_ms": round(percentile(done, 0.5) * 1000, 2),
            "ingress_process_cpu_ms_per_setup": round(main_cpu * 1000 / max(1, len(done)), 2),
            "client_cpu_ms_per_setup": round(client_cpu * 1000 / max(1, len(done)), 2)}


def progress(what: str, started: float = time.monotonic()) -> None:
    print(f"[{time.monotonic() - started:7.1f}s] {what}", file=sys.stderr, flush=True)


def combine(runs: list[dict]) -> dict:
    """Mean of the per-run figures (rates and CPU), with the individual rates kept."""
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and k not in ("accepted", "errors")]
    result = {k: round(sum(r[k] for r in runs) / len(runs), 2) for k in keys}
    result.update(accepted=sum(r["accepted"] for r in runs), errors=sum(r["errors"] for r in runs),
                  first_error=next((r["first_error"] for r in runs if r["first_error"]), None),
                  runs=[r["accept_rate"] for r in runs])
    return result


def measure(args) -> dict:
    progress("warm-up")
    accept_run(args, False, args.warmup)
    accept_run(args, True, args.warmup)
    setup_run(args, min(args.setups, 200))
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for round_ in range(args.rounds):                 # ABBA order cancels drift in a noisy machine
        for tls in ((False, True) if round_ % 2 == 0 else (True, False)):
            progress(f"round {round_ + 1}: {'tls + auth' if tls else 'plaintext'}")
            runs[tls].append(accept_run(args, tls, args.n // args.rounds))
    plain, tls = combine(runs[False]), combine(runs[True])
    progress("connection setups")
    setup = setup_run(args, args.setups)
    progress("done")
    ratio = tls["accept_rate"] / plain["accept_rate"] if plain["accept_rate"] else 0.0
    return {"messages": args.n, "size": args.size, "sessions": args.c, "per_session": args.per_session,
            "plaintext": plain, "tls_auth": tls, "tls_to_plain_ratio": round(ratio, 3),
            "ratio_ok": ratio >= 0.7, "connection_setup": setup}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tls", description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="messages per variant")
    parser.add_argument("-s", "--size", type=int, default=5120)
    parser.add_argument("-c", type=int, default=20, help="concurrent sessions")
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--setups", type=int, default=1000, help="connect+TLS+EHLO+AUTH+QUIT cycles")
    parser.add_argument("--rounds", type=int, default=2, help="plaintext/TLS run pairs, in ABBA order")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--worker-threads", type=int, default=4)
    args = parser.parse_args(argv)
    progress("starting mailpipe serve")
    proc, data_dir, info = start_server(args)
    args.ports, args.context, args.roots = info["ports"], client_context(info["cert"]), [proc.pid]
    args.data_dir, args.accepted_total = data_dir, 0
    try:
        print(json.dumps(measure(args), indent=2))
    finally:
        progress("stopping")
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0
