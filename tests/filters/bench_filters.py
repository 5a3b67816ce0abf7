"""Per-filter latency and throughput with the real daemons (not collected by pytest).

    python -m tests.filters.bench_filters [N] [--clients 2]

Starts clamd and spamd with ``tools.avspam`` in a temporary directory, scans N
distinct ~5 KB messages through each filter (unique bodies: clamd caches by
content hash), and prints median/p90 latency and messages per second for 1
and ``--clients`` concurrent callers. The rules figure uses the example file
of docs/rules.md.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mailpipe.filters.antivirus import AntivirusFilter
from mailpipe.filters.clamd_client import ClamdClient
from mailpipe.filters.rules import RulesFilter
from mailpipe.filters.spam import SpamFilter, Thresholds
from mailpipe.filters.spamc import SpamcClient
from mailpipe.filters.verdict import FilterInput
from tools import avspam
from tests.filters.messages import plain

WORDS = ("meeting report budget project team schedule review customer order invoice delivery "
         "quarter plan office travel hotel agenda minutes draft final update").split()


def messages(count: int, seed: int, size: int = 5120) -> list[FilterInput]:
    rng = random.Random(seed)
    out = []
    for number in range(count):
        words, length = [], 0
        while length < size - 400:
            word = rng.choice(WORDS)
            words.append(word)
            length += len(word) + 1
        raw = plain(body=f"Message {seed}-{number}\n\n" + "\n".join(" ".join(words[i:i + 12]) for i in range(0, len(words), 12)))
        out.append(FilterInput(raw=raw, sender="alice@example.org", recipients=("bob@example.com",),
                               client_ip="192.0.2.1", helo="mx.example.org"))
    return out


def measure(check, inputs: list[FilterInput], clients: int) -> str:
    latencies: list[float] = []

    def one(msg: FilterInput) -> None:
        started = time.perf_counter()
        check(msg)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, inputs))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return (f"{len(inputs) / elapsed:8.1f} msg/s  median {statistics.median(ordered) * 1000:7.2f} ms"
            f"  p90 {p90 * 1000:7.2f} ms  ({clients} client{'s' if clients > 1 else ''})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int, nargs="?", default=100)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mpbench"))
    daemons = avspam.start(root)
    try:
        av = AntivirusFilter(ClamdClient(daemons.clamd_tcp), "quarantine", "defer", 60.0)
        sp = SpamFilter(SpamcClient(daemons.spamd_tcp), Thresholds(), "defer", 60.0, 512 * 1024)
        rules_file = root / "rules.toml"
        docs = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
        rules_file.write_text(docs.split("```toml\n")[-1].split("```")[0], encoding="utf-8")
        rl = RulesFilter(rules_file)
        seeds = iter(range(1000))
        for name, flt in (("antivirus", av), ("spam", sp), ("rules", rl)):
            for clients in sorted({1, args.clients}):
                print(f"{name:10s} {measure(flt.check, messages(args.count, next(seeds)), clients)}")
    finally:
        avspam.stop(root)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
