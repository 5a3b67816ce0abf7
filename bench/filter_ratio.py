"""Filters against pass-through, in alternating pairs: ``python -m bench filter_ratio``.

Issue 3's target is a ratio of two end-to-end rates (anti-virus + rules
against pass-through, both on RabbitMQ). On a shared machine one run moves by
up to 40 %, so a single pair says little and the run that always comes first
inherits whatever the previous clean-up left behind. This runs ``--pairs``
pairs of ``python -m bench smtp --start`` runs in ABBA order (pass-through
first in even pairs, filters first in odd ones), each its own throw-away
server, and prints every pair's rates and ratio, and the median ratio.

Options after ``--`` go to each smtp run unchanged (``-n``, ``--broker``,
``--worker-processes`` ...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


#: CPU per message in each run, by part (bench.smtp's keys)
CPU_PARTS = {"server": "server_cpu_ms_per_msg", "ingress": "ingress_cpu_ms_per_msg", "broker": "broker_cpu_ms_per_msg",
             "workers": "workers_and_daemons_cpu_ms_per_msg", "daemons": "daemons_cpu_ms_per_msg"}


def one_run(filters: str, extra: list[str]) -> dict:
    argv = [sys.executable, "-m", "bench", "smtp", "--start", *extra]
    if filters:
        argv += ["--filters", filters]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"smtp run failed ({' '.join(argv[3:])}): {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout[done.stdout.index("{"):])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench filter_ratio", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--filters", default="antivirus,rules")
    parser.add_argument("smtp_args", nargs="*", help="options for each smtp run (after --)")
    args = parser.parse_args(argv)
    extra = args.smtp_args or ["--broker", "rabbitmq", "-n", "3000", "--worker-processes", "2",
                               "--ingress-processes", "2"]      # as issue 3's figures were measured
    pairs = []
    for i in range(args.pairs):
        order = [args.filters, ""] if i % 2 else ["", args.filters]
        runs = {name or "pass-through": one_run(name, extra) for name in order}
        filtered, plain = runs[args.filters], runs["pass-through"]
        pair = {"first": order[0] or "pass-through",
                "filters_e2e": filtered["e2e_rate"], "pass_through_e2e": plain["e2e_rate"],
                "ratio": round(filtered["e2e_rate"] / plain["e2e_rate"], 3),
                **{f"{label}_cpu_ms_{part}": run.get(key) for label, run in (("filters", filtered), ("pass_through", plain))
                   for part, key in CPU_PARTS.items()}}
        pairs.append(pair)
        print(json.dumps(pair), file=sys.stderr, flush=True)
    ratios = [p["ratio"] for p in pairs]
    print(json.dumps({"filters": args.filters, "smtp_args": extra, "pairs": pairs,
                      "median_ratio": round(statistics.median(ratios), 3),
                      "min_ratio": min(ratios), "max_ratio": max(ratios)}, indent=2))
    return 0
