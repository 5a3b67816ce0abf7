"""Run an IMAP or POP3 service and the SMTP ingress in ONE process under a low descriptor limit.

``python -m tests.imap.fdserver DIR NOFILE imap|pop3`` prints ``{"access": port, "smtp": port}``
and serves until stdin closes. Used by ``test_descriptors.py``; it is a process of its own so that
the lowered RLIMIT_NOFILE applies to it alone.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from tests.imap.conftest import Server
from tests.ingress.conftest import IngressServer, add_accounts
from tests.pop3.conftest import start_service

MANY = 100_000     #: no count cap: only the descriptor reserve may refuse


def main() -> None:
    root, nofile, protocol = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    (root / protocol).mkdir()
    if protocol == "imap":
        imap = Server(root / protocol, max_connections=MANY, max_connections_per_ip=MANY)
        port, stop = imap.port, imap.stop
    else:
        pop3 = start_service(root / protocol, pop3={"max_connections": MANY})
        port, stop = pop3.port, pop3.stop
    smtp = IngressServer(root / "smtp", None, ingress={"max_connections": 1000, "max_connections_per_ip": 1000})
    add_accounts(smtp.directory)
    smtp.start()
    print(json.dumps({"access": port, "smtp": smtp.port()}), flush=True)
    sys.stdin.read()
    stop()
    smtp.stop()


if __name__ == "__main__":
    main()
