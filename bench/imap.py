"""IMAP benchmark: ``python -m bench imap [--clients C] [--sessions N] ...``.

Builds a throwaway data dir (users, Maildirs filled through
``mailstore.maildir.deliver``), starts the IMAP service in a separate server
process on an ephemeral loopback port, and runs C concurrent client processes
(imaplib). Each session: LOGIN, SELECT INBOX, FETCH 1:* (FLAGS RFC822.SIZE
ENVELOPE), FETCH <bodies> messages BODY.PEEK[], SEARCH TEXT, STORE +FLAGS
(\\Seen), LOGOUT. Prints sessions/s, messages fetched/s (bodies), p50/p99
command latency and the server process's CPU ms per session (from /proc).

``--big N`` also times SELECT of an N-message mailbox (first open, then again).
``--dovecot`` uses the reference shape of ../shared/notes/baselines.md
(100 messages, FETCH 1:* (FLAGS RFC822.SIZE), every body).
"""

from __future__ import annotations

import argparse
import imaplib
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procstats import cpu_seconds

DOMAIN = "bench.test"
PASSWORD = "benchpw"
WORDS = ("invoice", "meeting", "report", "hóa", "đơn", "project", "budget", "lunch", "server", "mail")


def _message(i: int, size: int) -> bytes:
    rnd = random.Random(i)
    head = (f"From: Sender {i} <s{i}@example.org>\r\nTo: user@{DOMAIN}\r\nSubject: message {i} "
            f"{rnd.choice(WORDS)}\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{i}@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    line = " ".join(rnd.choice(WORDS) for _ in range(12)) + "\r\n"
    body = (line * (size // len(line.encode()) + 1)).encode()[: max(0, size - len(head))]
    return head.encode() + body


def _populate(data: Path, users: int, messages: int, size: int) -> list[str]:
    from mailpipe.mailstore.directory import open_directory
    from mailpipe.mailstore.maildir import deliver, maildir_path
    directory = open_directory(f"sqlite:///{data}/mailpipe.db")
    directory.add_domain(DOMAIN)
    names = [f"user{u}@{DOMAIN}" for u in range(users)]
    for name in names:
        directory.add_user(name, PASSWORD)
    first = maildir_path(data, names[0])
    for i in range(messages):
        deliver(first, [_message(i, size)], base=f"{1700000000 + i}.M{i:07d}.bench")
    for name in names[1:]:
        shutil.copytree(first, maildir_path(data, name))
    directory.close()
    return names


def _serve(data: str, portfile: str) -> None:
    """Server process: the real ImapService on 127.0.0.1:0; writes its port to `portfile`."""
    import asyncio

    from mailpipe.access.imap.server import ImapService
    from mailpipe.core.tls import TlsContexts
    from mailpipe.mailstore.directory import open_directory
    from mailpipe.core.config import Config

    async def main() -> None:
        config = Config(data_dir=Path(data), imap={"port": 0, "tls_port": 0, "max_connections_per_ip": 1000})
        service = ImapService(config, open_directory(f"sqlite:///{data}/mailpipe.db"), TlsContexts(None, None))
        await service.start()
        Path(portfile + ".tmp").write_text(str(service.addresses[0][1]))
        os.replace(portfile + ".tmp", portfile)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await service.stop()
    profile = os.environ.get("MAILPIPE_BENCH_PROFILE")
    if profile:   # cProfile of the server's event-loop thread, written at SIGTERM
        import cProfile
        cProfile.runctx("asyncio.run(main())", globals(), locals(), profile)
    else:
        asyncio.run(main())


def _timed(latencies: list[float], func, *args):
    start = time.perf_counter()
    typ, data = func(*args)
    latencies.append(time.perf_counter() - start)
    if os.environ.get("MAILPIPE_BENCH_SLOW") and latencies[-1] > 1.0:
        print(f"slow: {func.__name__} {latencies[-1]:.2f} s", file=sys.stderr)
    if typ not in ("OK", "BYE"):
        raise RuntimeError(f"{func.__name__} failed: {typ} {data!r:.200}")
    return data


def _session(port: int, user: str, opts, rnd: random.Random, lat: list[float]) -> int:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    _timed(lat, client.login, user, PASSWORD)
    count = int(_timed(lat, client.select, "INBOX")[0])
    items = "(FLAGS RFC822.SIZE)" if opts.dovecot else "(FLAGS RFC822.SIZE ENVELOPE)"
    _timed(lat, client.fetch, "1:*", items)
    bodies = min(opts.bodies, count)
    start = rnd.randint(1, max(1, count - bodies + 1))
    data = _timed(lat, client.fetch, f"{start}:{start + bodies - 1}", "(BODY.PEEK[])")
    fetched = sum(1 for item in data if isinstance(item, tuple))
    _timed(lat, client.search, None, "TEXT", rnd.choice(WORDS[:3]))
    _timed(lat, client.store, str(rnd.randint(1, count)), "+FLAGS", "(\\Seen)")
    _timed(lat, client.logout)
    return fetched


def _client_worker(args) -> tuple[int, int, list[float]]:
    port, users, opts, sessions, seed = args
    rnd = random.Random(seed)
    lat: list[float] = []
    fetched = 0
    for _ in range(sessions):
        fetched += _session(port, rnd.choice(users), opts, rnd, lat)
    return sessions, fetched, lat


def _start_server(data: Path) -> tuple[subprocess.Popen, int]:
    portfile = data / "port"
    proc = subprocess.Popen([sys.executable, "-c", f"from bench.imap import _serve; _serve({str(data)!r}, {str(portfile)!r})"])
    deadline = time.monotonic() + 30
    while not portfile.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("IMAP server did not start")
        time.sleep(0.05)
    return proc, int(portfile.read_text())


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def run_load(opts) -> dict:
    with tempfile.TemporaryDirectory(prefix="mailpipe-imap-bench-") as tmp:
        data = Path(tmp)
        users = _populate(data, opts.users, opts.messages, opts.size)
        proc, port = _start_server(data)
        try:
            for user in users:   # warm-up: first login per user pays the password hash
                _session(port, user, opts, random.Random(0), [])
            per_client = [opts.sessions // opts.clients + (1 if i < opts.sessions % opts.clients else 0)
                          for i in range(opts.clients)]
            cpu0, t0 = cpu_seconds([proc.pid]), time.perf_counter()
            with multiprocessing.get_context("fork").Pool(opts.clients) as pool:
                results = pool.map(_client_worker, [(port, users, opts, n, i) for i, n in enumerate(per_client)])
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds([proc.pid]) - cpu0
        finally:
            proc.terminate()
            proc.wait(10)
    sessions = sum(r[0] for r in results)
    fetched = sum(r[1] for r in results)
    lat = [x for r in results for x in r[2]]
    return {"sessions": sessions, "seconds": elapsed, "sessions_per_s": sessions / elapsed,
            "fetched_per_s": fetched / elapsed, "p50_ms": _percentile(lat, 0.5) * 1000,
            "p99_ms": _percentile(lat, 0.99) * 1000, "server_cpu_ms_per_session": cpu * 1000 / sessions}


def run_big(count: int) -> dict:
    """SELECT timing of one `count`-message mailbox, in-process (storage + view), first and second open."""
    from mailpipe.access.imap.selected import View
    from mailpipe.mailstore.maildir import ensure_maildir
    with tempfile.TemporaryDirectory(prefix="mailpipe-imap-big-") as tmp:
        root = Path(tmp) / "Maildir"
        ensure_maildir(root)
        for i in range(count):   # written directly: deliver() fsyncs each file, too slow for 100k
            name = f"{1700000000 + i}.M{i:07d}.big,S=100"
            (root / "new" / name).write_bytes(b"Subject: x\r\n\r\n" + b"x" * 86)
        timings = []
        for readonly in (False, False, False, True):
            start, cpu = time.perf_counter(), time.process_time()
            view = View(root, readonly)
            view.open()
            timings.append((time.perf_counter() - start, time.process_time() - cpu))
            assert len(view.uids) == count
        return {"messages": count, "opens": timings}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench imap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--bodies", type=int, default=100)
    parser.add_argument("--big", type=int, default=0, help="also time SELECT of a mailbox this large")
    parser.add_argument("--dovecot", action="store_true", help="the reference shape: 100 msgs, every body")
    opts = parser.parse_args(argv)
    if opts.dovecot:
        opts.messages, opts.bodies = 100, 100
    if opts.sessions > 0:
        result = run_load(opts)
        print(f"imap: {result['sessions']} sessions, {opts.clients} clients, {opts.messages} msgs of "
              f"{opts.size} B, {opts.bodies} bodies/session in {result['seconds']:.1f} s")
        print(f"  sessions/s {result['sessions_per_s']:.1f}  messages fetched/s {result['fetched_per_s']:.0f}  "
              f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
              f"server CPU {result['server_cpu_ms_per_session']:.1f} ms/session")
    if opts.big:
        big = run_big(opts.big)
        first, *again = big["opens"]
        print(f"  SELECT of {big['messages']} messages (wall/CPU s): first {first[0]:.2f}/{first[1]:.2f} "
              "(moves new/ to cur/), then " + ", ".join(f"{w:.3f}/{c:.3f}" for w, c in again[:2])
              + f", EXAMINE {again[2][0]:.3f}/{again[2][1]:.3f}")
    return 0
