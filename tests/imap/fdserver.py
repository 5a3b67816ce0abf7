"""Run an IMAP service and the SMTP ingress in ONE process under a low descriptor limit.

``python -m tests.imap.fdserver DIR NOFILE`` prints ``{"imap": port, "smtp": port}`` and serves
until stdin closes. Used by ``test_descriptors.py``; it is a process of its own so that the
lowered RLIMIT_NOFILE applies to it alone.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from tests.imap.conftest import Server
from tests.ingress.conftest import IngressServer, add_accounts


def main() -> None:
    root, nofile = Path(sys.argv[1]), int(sys.argv[2])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    (root / "imap").mkdir()
    imap = Server(root / "imap", max_connections=100_000, max_connections_per_ip=100_000)
    smtp = IngressServer(root / "smtp", None, ingress={"max_connections": 1000, "max_connections_per_ip": 1000})
    add_accounts(smtp.directory)
    smtp.start()
    print(json.dumps({"imap": imap.port, "smtp": smtp.port()}), flush=True)
    sys.stdin.read()
    imap.stop()
    smtp.stop()


if __name__ == "__main__":
    main()
