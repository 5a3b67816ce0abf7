"""``python -m bench filters``: the SMTP benchmark with the real filters on.

Defaults: 300 messages of 5 KB over 4 sessions, antivirus + spam + rules, real
clamd and spamd started for the run; prints end-to-end rate and per-stage
latency. ``--filters antivirus,rules`` measures the pipeline without spamd.
"""

from __future__ import annotations

from bench import smtp


def main(argv: list[str]) -> int:
    defaults = ["--start", "-n", "300", "-c", "4", "--per-session", "25", "--warmup", "20",
                "--worker-processes", "1", "--worker-threads", "4", "--filters", "antivirus,spam,rules"]
    given = {a for a in argv if a.startswith("-")}
    merged = []
    i = 0
    while i < len(defaults):
        flag = defaults[i]
        takes_value = i + 1 < len(defaults) and not defaults[i + 1].startswith("-")
        if flag not in given:
            merged += defaults[i:i + 2] if takes_value else [flag]
        i += 2 if takes_value else 1
    return smtp.main(merged + argv)
