"""Dispatch ``python -m bench NAME ...`` to ``bench.NAME.main``."""

from __future__ import annotations

import importlib
import sys

NAMES = ("smtp", "filters", "filter_ratio", "spamd_alone", "relay", "tls", "imap", "pop3", "queue", "stalled_destination")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in NAMES:
        print(f"usage: python -m bench {{{'|'.join(NAMES)}}} [options]  (--help per benchmark)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{argv[0]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
