"""Module for the stock Celery command line: ``celery -A mailpipe.workers.celery_app worker -Q smtp_in,...``.

The configuration comes from ``MAILPIPE_CONFIG`` (a TOML file) and ``MAILPIPE_*``
environment variables, loaded once here because the celery command imports this
module by name; everything else receives its config explicitly.
"""

import os

from mailpipe.core.config import load
from mailpipe.workers.app import create_app

app = create_app(load(os.environ.get("MAILPIPE_CONFIG") or None))
