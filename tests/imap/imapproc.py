"""An IMAP server in a process of its own, so a test can measure that process's memory.

``python -m tests.imap.imapproc DIR`` prints ``{"port": ..., "pid": ...}`` and serves until stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.imap.conftest import Server


def main() -> None:
    server = Server(Path(sys.argv[1]))
    print(json.dumps({"port": server.port, "pid": os.getpid()}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
