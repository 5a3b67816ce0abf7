"""``python -m bench pop3``: POP3 sessions against a real Pop3Service in its own process.

Each of C concurrent clients runs sessions of USER, PASS, STAT, LIST, RETR of
every message, QUIT (the Dovecot reference in the shared baselines: 100 users
x 100 messages of 5 KB, 10 clients, 300 sessions). Prints sessions/s,
messages retrieved/s and the server's CPU per session and per message.

Setup writes the messages straight into each user's Maildir (``new/``, named
``<base>,S=<size>`` as local delivery does) and creates the accounts with a
cheap argon2 setting (``--strong-hash`` keeps the default); a warm-up pass logs
every user in once, so the measured run is not dominated by password hashing.

Must not: bind the default ports or leave processes behind.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

DOVECOT = {"messages_per_s": 4619.0, "sessions_per_s": 46.2, "cpu_ms_per_session": 21.0}
PASSWORD = "bench password"


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench pop3", description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", "-c", type=int, default=10)
    p.add_argument("--sessions", type=int, default=300)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--messages", type=int, default=100, help="messages per user")
    p.add_argument("--size", type=int, default=5120, help="message size in bytes")
    p.add_argument("--strong-hash", action="store_true", help="default argon2 cost for the accounts")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--dir", type=Path, default=None, help="data directory to use (kept)")
    return p.parse_args(argv)


def _message(user: int, number: int, size: int) -> bytes:
    head = f"From: bench@example.org\r\nTo: u{user}@bench.test\r\nSubject: message {number}\r\n\r\n".encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 2)]
    return head + body + b"\r\n"


def _setup(data: Path, args: argparse.Namespace) -> tuple[str, list[str]]:
    from argon2 import PasswordHasher

    from mailpipe.mailstore.directory import open_directory
    from mailpipe.mailstore.maildir import ensure_maildir, maildir_path

    db_url = f"sqlite:///{data / 'accounts.db'}"
    hasher = None if args.strong_hash else PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    directory = open_directory(db_url, hasher=hasher)
    directory.add_domain("bench.test")
    users = []
    for u in range(args.users):
        users.append(directory.add_user(f"u{u}@bench.test", PASSWORD))
        root = maildir_path(data, users[-1])
        ensure_maildir(root)
        for n in range(args.messages):
            body = _message(u, n, args.size)
            (root / "new" / f"{1700000000 + n}.bench{u}x{n},S={len(body)}").write_bytes(body)
    directory.close()
    return db_url, users


def _serve(data: str, db_url: str, conn) -> None:
    """Child process: run the service until told to stop; answer CPU questions."""
    from mailpipe.access.pop3.server import Pop3Service
    from mailpipe.core.tls import TlsContexts
    from mailpipe.mailstore.directory import open_directory
    from mailpipe.core.config import Config

    async def main() -> None:
        config = Config(data_dir=Path(data), pop3={"port": 0, "tls_port": 0, "max_connections": 10_000})
        service = Pop3Service(config, open_directory(db_url), TlsContexts(None, None))
        await service.start()
        conn.send(service.addresses[0][1])
        loop = asyncio.get_running_loop()
        for _ in range(1000):
            request = await loop.run_in_executor(None, conn.recv)
            if request == "stop":
                break
            usage = resource.getrusage(resource.RUSAGE_SELF)
            conn.send((usage.ru_utime, usage.ru_stime))
        await service.stop()

    asyncio.run(main())


async def _expect_ok(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    if not line.startswith(b"+OK"):
        raise RuntimeError(f"server said {line[:80]!r}")
    return line


async def _session(port: int, user: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=16 * 1024 * 1024)
    try:
        await _expect_ok(reader)
        for command in (f"USER {user}", f"PASS {PASSWORD}"):
            writer.write(f"{command}\r\n".encode())
            await _expect_ok(reader)
        writer.write(b"STAT\r\n")
        count = int((await _expect_ok(reader)).split()[1])
        writer.write(b"LIST\r\n")
        await _expect_ok(reader)
        sizes = [int(line.split()[1]) for line in (await reader.readuntil(b".\r\n")).splitlines()[:-1]]
        for number in range(1, count + 1):
            writer.write(f"RETR {number}\r\n".encode())
            await _expect_ok(reader)
            body = await reader.readuntil(b"\r\n.\r\n")
            if len(body) - 3 != sizes[number - 1]:
                raise RuntimeError(f"RETR {number}: {len(body) - 3} octets, LIST said {sizes[number - 1]}")
        writer.write(b"QUIT\r\n")
        await _expect_ok(reader)
        return count
    finally:
        writer.close()


async def _run(port: int, users: list[str], sessions: int, concurrency: int) -> tuple[int, list[float]]:
    queue = list(range(sessions))
    latencies: list[float] = []
    fetched = 0

    async def worker() -> None:
        nonlocal fetched
        while queue:
            i = queue.pop()
            start = time.perf_counter()
            count = await _session(port, users[i % len(users)])
            fetched += count
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return fetched, latencies


def _report(args, sessions: int, fetched: int, elapsed: float, cpu_split: tuple[float, float],
            latencies: list[float]) -> None:
    sps, mps = sessions / elapsed, fetched / elapsed
    cpu = sum(cpu_split)
    cpu_session = 1000 * cpu / sessions
    print(f"pop3: {sessions} sessions x {args.messages} messages of {args.size} B, "
          f"{args.concurrency} concurrent clients, {args.users} users")
    print(f"  sessions/s            {sps:8.1f}   (Dovecot {DOVECOT['sessions_per_s']}: {sps / DOVECOT['sessions_per_s']:.2f}x)")
    print(f"  messages retrieved/s  {mps:8.0f}   (Dovecot {DOVECOT['messages_per_s']:.0f}: "
          f"{mps / DOVECOT['messages_per_s']:.2f}x)")
    print(f"  server CPU ms/session {cpu_session:8.2f}   (Dovecot {DOVECOT['cpu_ms_per_session']})")
    print(f"  server CPU ms/message {1000 * cpu / max(fetched, 1):8.3f}   "
          f"(user {1000 * cpu_split[0] / sessions:.1f} + system {1000 * cpu_split[1] / sessions:.1f} ms/session)")
    print(f"  session latency p50 {1000 * statistics.median(latencies):.0f} ms, "
          f"max {1000 * max(latencies):.0f} ms; elapsed {elapsed:.2f} s")


def main(argv: list[str]) -> int:
    args = _args(argv)
    data = args.dir or Path(tempfile.mkdtemp(prefix="mailpipe-bench-pop3-"))
    data.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = None
    try:
        db_url, users = _setup(data, args)
        server = ctx.Process(target=_serve, args=(str(data), db_url, child), daemon=True)
        server.start()
        if not parent.poll(60):
            raise RuntimeError("server did not start")
        port = parent.recv()
        if not args.no_warmup:
            asyncio.run(_run(port, users, len(users), min(args.concurrency, len(users))))
        parent.send("cpu")
        user_before, sys_before = parent.recv()
        start, client_start = time.perf_counter(), time.process_time()
        fetched, latencies = asyncio.run(_run(port, users, args.sessions, args.concurrency))
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - client_start
        parent.send("cpu")
        user_after, sys_after = parent.recv()
        cpu = (user_after - user_before, sys_after - sys_before)
        _report(args, args.sessions, fetched, elapsed, cpu, latencies)
        print(f"  load generator CPU ms/session {1000 * client_cpu / args.sessions:.2f} (same machine); "
              f"load average {os.getloadavg()[0]:.1f}")
        return 0
    finally:
        if server is not None:
            parent.send("stop")
            server.join(15)
            if server.is_alive():
                server.kill()
        if args.dir is None:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
