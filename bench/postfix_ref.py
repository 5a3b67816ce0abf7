"""A throw-away Postfix instance relaying to smtp-sink: the reference the relay benchmark compares with.

Owns: writing a minimal ``main.cf``/``master.cf`` into a temporary directory
(own queue and data directories, loopback only, ``relayhost`` = the sink, no
DNS, no TLS, log to the process's stdout), starting it with ``postfix
start-fg`` as a child we own, reading per-message ``delay=`` and
``status=sent`` from its log, and stopping it by its process ID.

Must not: touch the system's Postfix (``/etc/postfix`` is only read, for
``master.cf``), or run unless started as root (Postfix needs its own user).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_SENT = re.compile(r" delay=([0-9.]+),.* status=sent ")
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"


def _main_cf(work: Path, sink_port: int) -> str:
    return "\n".join([
        "compatibility_level = 3.6", f"queue_directory = {work}/spool", f"data_directory = {work}/data",
        "myhostname = postfix-ref.bench", "mydestination =", "inet_interfaces = 127.0.0.1",
        "inet_protocols = ipv4", "mynetworks = 127.0.0.0/8", f"relayhost = [127.0.0.1]:{sink_port}",
        "smtp_dns_support_level = disabled", "maillog_file = /dev/stdout", "syslog_name = postfix-ref",
        "smtpd_relay_restrictions = permit_mynetworks, reject", "smtp_tls_security_level = none",
        "smtpd_tls_security_level = none", ""])


class PostfixRef:
    """``with PostfixRef(sink_port, port) as pf: ... pf.sent()``."""

    def __init__(self, sink_port: int, port: int) -> None:
        self.sink_port, self.port = sink_port, port
        self.work = Path(tempfile.mkdtemp(prefix="mpbench-postfix-"))
        self.log = self.work / "postfix.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "PostfixRef":
        if os.geteuid() != 0 or not Path(POSTFIX).exists():
            raise RuntimeError("the Postfix reference needs root and the Debian postfix package")
        self.work.chmod(0o755)
        (self.work / "etc").mkdir()
        (self.work / "data").mkdir()
        (self.work / "spool").mkdir()
        shutil.chown(self.work / "data", "postfix")
        master = Path("/etc/postfix/master.cf").read_text()
        master = re.sub(r"(?m)^smtp(\s+)inet", f"127.0.0.1:{self.port}\\1inet", master, count=1)
        (self.work / "etc" / "master.cf").write_text(master)
        (self.work / "etc" / "main.cf").write_text(_main_cf(self.work, self.sink_port))
        conf = str(self.work / "etc")
        subprocess.run([POSTFIX, "-c", conf, "post-install", "create-missing"], check=True, capture_output=True)
        self.proc = subprocess.Popen([POSTFIX, "-c", conf, "start-fg"], stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        return self

    def sent(self) -> list[float]:
        """Postfix's own ``delay=`` (arrival to delivery, s) of every message sent so far."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [float(m.group(1)) for m in _SENT.finditer(text)]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run([POSTFIX, "-c", str(self.work / "etc"), "stop"], capture_output=True, timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.2)
        shutil.rmtree(self.work, ignore_errors=True)
