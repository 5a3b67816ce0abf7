"""Logging set-up: one line per event, ``<ID>: ...`` in the message, like Postfix's maillog.

Also keeps three library messages out of the log that mislead an operator:
kombu's "No hostname was supplied" (the embedded broker's ``spool://`` URL has no
host by design), and Celery's root ``SecurityWarning`` that names a ``--uid``
option mailpipe does not have (serve warns once itself; see ``[process] user``).
Celery's start banner is switched off where the worker starts (``ops/worker.py``).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings


class _DropMessages(logging.Filter):
    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def setup(level: str = "INFO", role: str = "mailpipe") -> None:
    fmt = f"%(asctime)s {role}[{os.getpid()}] %(name)s %(levelname)s: %(message)s"
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("celery", "kombu", "amqp", "asyncio", "mail.log"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("kombu.connection").addFilter(_DropMessages("No hostname was supplied"))
    warnings.filterwarnings("ignore", message=r"(?s).*running the worker with superuser privileges")
