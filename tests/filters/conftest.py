"""Session fixture: real clamd and spamd on free loopback ports (``tools.avspam``).

Skipped with a reason when the binaries are missing, unless ``CI=true``:
then it fails, because CI must run the real daemons.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tools import avspam


@pytest.fixture(scope="session")
def daemons():
    if not avspam.binaries_present():
        message = "clamd/spamd not installed (apt-get install clamav-daemon spamd spamassassin)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="mpav"))   # short: unix socket paths < 108 bytes
    started = avspam.start(root)
    try:
        yield started
    finally:
        avspam.stop(root)
        shutil.rmtree(root, ignore_errors=True)
