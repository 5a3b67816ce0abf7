"""Logging set-up: one line per event, ``<ID>: ...`` in the message, like Postfix's maillog."""

from __future__ import annotations

import logging
import os
import sys


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
