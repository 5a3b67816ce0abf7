"""`mailpipe serve` started from an operator's working directory that holds files named like
modules mailpipe imports: serve's worker and ingress children must import the libraries, not
those files (``python -m`` alone would put the working directory first on ``sys.path``)."""

from __future__ import annotations

import shutil
import smtplib
import sys
from pathlib import Path

import pytest

from tests.support import ServeProcess, add_accounts, wait_for

pytestmark = pytest.mark.slow


def test_files_in_the_working_directory_do_not_shadow_modules_in_serve_children(tmp_path):
    work, marker = tmp_path / "cwd", tmp_path / "shadowed"
    work.mkdir()
    for name in ("dns", "celery", "kombu"):
        (work / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name}\\n')\n"
                                         f"raise SystemExit('{name}.py of the working directory imported')\n")
    script = shutil.which("mailpipe", path=str(Path(sys.executable).parent)) or shutil.which("mailpipe")
    assert script, "the mailpipe console script is not installed"
    server = ServeProcess(tmp_path, ingress_toml="processes = 2\n")      # a worker and an ingress child
    add_accounts(server.data_dir, "example.test", ["alice"])
    server.start(command=[script], cwd=work)
    try:
        for i in range(4):                      # connections spread over both ingress processes
            with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
                smtp.sendmail("bob@remote.test", ["alice@example.test"], f"Subject: {i}\r\n\r\nhi\r\n")
        wait_for(lambda: len(server.delivered("alice@example.test")) == 4, 30, what="4 deliveries")
    finally:
        server.stop()
    assert not marker.exists(), marker.read_text()
