"""Issue 17.10: a full mail filesystem defers local delivery; nothing goes to ``dead``.

A REAL full filesystem: a 1 MB tmpfs mounted as the data directory's mailbox
area (``DATA/mail``), 25 messages of 100 KB through the real pipeline (every
stage, the spool, the scheduler; clock injected). About a third fit; the rest
are deferred with the retry schedule, and ``mailpipe queue list`` says why.
Then room is made (the tmpfs is remounted larger) and, once due, every message
is delivered exactly once. Needs root (``mount``); skipped with the reason
otherwise.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.core.config import Config
from mailpipe.core.ids import new_queue_id
from mailpipe.spool.model import Entry, Recipient, State
from mailpipe.workers.app import QUEUE_STAGES
from mailpipe.workers.runtime import Runtime
from mailpipe.workers.scheduler import Scheduler
from tests.support import fast_directory

MESSAGES = 25
BODY = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 1300      # about 100 KB


class Published(list):
    def __call__(self, stage: str, qid: str, redelivered: bool = False) -> None:
        self.append((stage, qid))


def _mount(target, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


@pytest.fixture
def small_mail_fs(tmp_path):
    mail = tmp_path / "mail"
    _mount(mail, "1m")
    try:
        yield mail
    finally:
        subprocess.run(["umount", "-l", str(mail)], capture_output=True, timeout=30)


def _runtime(data_dir) -> Runtime:
    config = Config(data_dir=data_dir, hostname="mx.example.test", pipeline={"filters": []})
    directory = fast_directory(data_dir)
    directory.add_domain("example.test")
    directory.add_user("alice@example.test", "pw")
    return Runtime(config, publish=Published(), served=frozenset(QUEUE_STAGES), clock=FakeClock(),
                   directory=directory)


def _spool(rt: Runtime) -> list[str]:
    ids = []
    for _ in range(MESSAGES):
        qid = new_queue_id()
        rt.spool.create(Entry(id=qid, sender="bob@remote.test", recipients=[Recipient(address="alice@example.test")],
                              size=len(BODY), received_at=rt.clock.now()), [BODY])
        ids.append(qid)
    return ids


def _inbox(mail) -> list[str]:
    root = mail / "example.test" / "alice" / "Maildir"
    return sorted(os.listdir(root / "new") + os.listdir(root / "cur")) if root.exists() else []


def test_full_mail_filesystem_defers_and_delivers_once_when_space_returns(tmp_path, small_mail_fs, caplog):
    rt = _runtime(tmp_path)
    ids = _spool(rt)
    for qid in ids:
        rt.pipeline.run(qid, "smtp_in")
    entries = [rt.spool.load(qid) for qid in ids]
    states = [e.state for e in entries]
    assert State.DEAD not in states
    deferred = [e for e in entries if e.state == State.DEFERRED]
    assert deferred and len(_inbox(small_mail_fs)) == MESSAGES - len(deferred)
    first = deferred[0]
    assert first.stage == "local" and first.last_error.startswith("disk full (No space left on device)")
    assert first.next_attempt == rt.clock.now() + rt.config.relay.retry_first      # the [relay] schedule
    assert "status=deferred (disk full" in caplog.text
    assert not os.listdir(next(small_mail_fs.rglob("tmp")))                       # no partial files left

    listing = subprocess.run([sys.executable, "-m", "mailpipe.ops", "--data-dir", str(tmp_path),
                              "queue", "list", "--json"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr[-2000:]
    rows = {r["id"]: r for r in json.loads(listing.stdout)}
    assert rows[first.id]["state"] == "deferred" and "disk full" in rows[first.id]["last_error"]

    subprocess.run(["mount", "-o", "remount,size=8m", "tmpfs", str(small_mail_fs)], check=True, timeout=30)
    scheduler = Scheduler(rt.spool, rt.publish, rt.config, rt.clock)
    rt.clock.advance(rt.config.relay.retry_first + 1)
    assert scheduler.tick().due == len(deferred)
    for stage, qid in list(rt.publish):
        rt.pipeline.run(qid, stage)
    assert all(rt.spool.load(qid).state == State.DONE for qid in ids)
    inbox = _inbox(small_mail_fs)
    assert len(inbox) == MESSAGES and len({name.split(":")[0] for name in inbox}) == MESSAGES


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_storage_errors_are_temporary_in_any_stage(tmp_path, monkeypatch, code):
    from mailpipe.workers import stages
    from mailpipe.workers.deferral import storage_failure
    rt = _runtime(tmp_path)

    def failing(*_args):
        try:
            raise OSError(code, os.strerror(code), "/data/x")
        except OSError as exc:
            raise RuntimeError("wrapped by a library") from exc
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "route", failing)
    qid = _spool(rt)[0]
    rt.pipeline.run(qid, "smtp_in")
    entry = rt.spool.load(qid)
    assert entry.state == State.DEFERRED and entry.stage == "route"
    assert os.strerror(code) in entry.last_error
    assert storage_failure(ValueError("no")) is None
