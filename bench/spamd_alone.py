"""``python -m bench spamd_alone``: spamd's own throughput on the benchmark's messages.

The reference for the filters benchmark: the same 5 KB messages the SMTP
benchmark sends, checked straight with the SPAMC client from 2 threads (one
per spamd child), with no mailpipe around it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

from mailpipe.filters.spamc import SpamcClient
from tools import avspam
from bench.smtp import make_message


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench spamd_alone")
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("-c", type=int, default=2)
    parser.add_argument("-s", "--size", type=int, default=5120)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mpav"))
    daemons = avspam.start(root)
    try:
        messages = [make_message(i, args.size, f"user{i % 100}@bench.test") for i in range(args.n)]
        client = SpamcClient(daemons.spamd_unix)
        client.check(messages[0])                                   # warm-up
        shards = [messages[k::args.c] for k in range(args.c)]
        started = time.perf_counter()
        threads = [threading.Thread(target=lambda s=s: [client.check(m) for m in s]) for s in shards]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        elapsed = time.perf_counter() - started
        print(f"spamd alone: {args.n} messages, {args.c} clients: {args.n / elapsed:.1f} msgs/s "
              f"({elapsed * 1000 / args.n * args.c:.0f} ms per check)")
    finally:
        avspam.stop(root)
        shutil.rmtree(root, ignore_errors=True)
    return 0
