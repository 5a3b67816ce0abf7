"""``mailpipe queue`` as an operator runs it (the installed command, a real data directory):
filters on ``list``, bulk changes with a count and a question, corrupt entries."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mailpipe.core.ids import new_queue_id
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry, Recipient, State
from tests.support import mailpipe

@pytest.fixture
def data(tmp_path) -> Path:
    (tmp_path / "mailpipe.toml").write_text('broker_url = "spool://"\n')
    return tmp_path


def cli(data: Path, *args: str, input: bytes | None = None, check: bool = True):
    return mailpipe(*args, config=data / "mailpipe.toml", data_dir=data, input=input, check=check)


def put(data: Path, sender: str, rcpt: str, state: State, age: float = 0.0) -> str:
    spool, now = FilesystemSpool(data / "spool"), time.time()
    e = Entry(id=new_queue_id(now - age), sender=sender, size=10, received_at=now - age,
              recipients=[Recipient(address=rcpt, route="remote")])
    spool.create(e, [b"Subject: t\r\n\r\nbody\r\n"])
    if state != State.ACTIVE:
        e.state, e.stage = state, "remote"
        e.next_attempt = now + 3600 if state == State.DEFERRED else None
        e.last_error = "451 4.4.1 try later" if state == State.DEFERRED else ""
        spool.save(e)
    return e.id


def ids(data: Path, *filters: str) -> set[str]:
    return {row["id"] for row in json.loads(cli(data, "queue", "list", "--json", *filters).stdout)}


def states(data: Path) -> dict[str, str]:
    return {row["id"]: row["state"] for row in json.loads(cli(data, "queue", "list", "--json").stdout)}


def test_list_filters(data):
    a = put(data, "x@one.test", "u@far.test", State.DEFERRED, age=10 * 86400)     # ages far apart: the
    b = put(data, "y@two.test", "w@far.test", State.HOLD, age=2 * 86400)          # command reads the real clock
    c = put(data, "", "z@near.test", State.DEFERRED)
    assert ids(data) == {a, b, c}
    assert ids(data, "--state", "deferred") == {a, c}
    assert ids(data, "--sender", "X@one.test") == {a} and ids(data, "--sender", "<>") == {c}
    assert ids(data, "--recipient", "z@near.test") == {c}
    assert ids(data, "--domain", "far.test") == {a, b}
    assert ids(data, "--older-than", "5d") == {a} and ids(data, "--older-than", "86400") == {a, b}
    assert ids(data, "--domain", "far.test", "--state", "hold") == {b}
    table = cli(data, "queue", "list", "--state", "deferred").stdout.decode()
    assert a in table and c in table and b not in table and "451 4.4.1 try later" in table
    assert table.rstrip().endswith("2 message(s)")
    bad = cli(data, "queue", "list", "--older-than", "soon", check=False)
    assert bad.returncode == 2 and b"--older-than" in bad.stderr and b"Traceback" not in bad.stderr


def test_list_of_an_empty_spool_is_an_empty_json_array(data):
    assert json.loads(cli(data, "queue", "list", "--json").stdout) == []


def test_bulk_hold_asks_first_and_counts(data):
    a = put(data, "x@one.test", "u@far.test", State.DEFERRED)
    b = put(data, "x@one.test", "v@far.test", State.ACTIVE)
    c = put(data, "x@one.test", "w@near.test", State.DEFERRED)
    no = cli(data, "queue", "hold", "--domain", "far.test", input=b"n\n", check=False)
    assert no.returncode == 1 and b"hold 2 message(s)?" in no.stdout
    assert states(data) == {a: "deferred", b: "active", c: "deferred"}
    yes = cli(data, "queue", "hold", "--domain", "far.test", input=b"y\n")
    assert b"2 message(s) held" in yes.stdout
    assert states(data) == {a: "hold", b: "hold", c: "deferred"}
    quiet = cli(data, "queue", "hold", "--sender", "x@one.test", "--yes")     # only c can still be held
    assert b"?" not in quiet.stdout and b"1 message(s) held" in quiet.stdout
    assert states(data)[c] == "hold"


def test_bulk_release_retry_and_delete_take_the_same_filters(data):
    held = [put(data, "s@x.test", f"r{i}@far.test", State.HOLD) for i in range(3)]
    waiting = put(data, "s@x.test", "r@far.test", State.DEFERRED)
    other = put(data, "s@x.test", "r@near.test", State.DEFERRED)
    out = cli(data, "queue", "release", "--state", "hold", "--yes").stdout
    assert b"3 message(s) released" in out
    assert all(states(data)[h] == "active" for h in held)
    assert b"1 message(s) scheduled now" in cli(data, "queue", "retry", "--domain", "far.test", "--yes").stdout
    assert states(data)[waiting] == "active" and states(data)[other] == "deferred"
    assert b"5 message(s) deleted" in cli(data, "queue", "delete", "--sender", "s@x.test", "--yes").stdout
    assert states(data) == {}


def test_single_id_forms_keep_working_and_refuse_filters_with_an_id(data):
    qid = put(data, "s@x.test", "r@far.test", State.DEFERRED)
    assert cli(data, "queue", "hold", qid).stdout.decode().strip() == f"{qid}: held"
    assert cli(data, "queue", "release", qid).stdout.decode().strip() == f"{qid}: released"
    both = cli(data, "queue", "delete", qid, "--state", "active", check=False)
    assert both.returncode == 2 and b"not both" in both.stderr
    neither = cli(data, "queue", "delete", check=False)
    assert neither.returncode == 2 and b"at least one filter" in neither.stderr
    assert cli(data, "queue", "delete", qid).stdout.decode().strip() == f"{qid}: deleted"


def corrupt(data: Path, qid: str) -> None:
    path = data / "spool" / "queue" / f"{qid}.json"
    path.write_bytes(b'{"id": "' + qid.encode() + b'", "sender": 42')     # cut short by a bad disk
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_a_corrupt_entry_is_counted_listed_shown_in_one_line_and_moved_aside(data):
    good = put(data, "s@x.test", "r@far.test", State.DEFERRED)
    bad = put(data, "s@x.test", "q@far.test", State.DEFERRED)
    corrupt(data, bad)
    rows = {r["id"]: r for r in json.loads(cli(data, "queue", "list", "--json").stdout)}
    assert rows[bad]["state"] == "corrupt" and rows[bad]["last_error"] == "not valid JSON"
    assert rows[good]["state"] == "deferred"
    assert ids(data, "--state", "corrupt") == {bad}
    status = json.loads(cli(data, "queue", "status", "--json").stdout)
    assert status["spool_corrupt"] == 1 and status["spool"]["deferred"] == 1
    shown = cli(data, "queue", "show", bad, check=False)
    assert shown.returncode == 1 and b"Traceback" not in shown.stderr
    assert shown.stderr.decode().strip() == (f"Error: {bad}: corrupt spool entry (not valid JSON); "
                                             f"'mailpipe queue move-aside {bad}' sets it aside")
    moved = cli(data, "queue", "move-aside", "--corrupt", "--yes").stdout.decode()
    assert "1 message(s) moved aside" in moved and str(data / "spool" / "aside") in moved
    assert (data / "spool" / "aside" / f"{bad}.json").exists()
    assert states(data) == {good: "deferred"}
    single = cli(data, "queue", "move-aside", good).stdout.decode().strip()
    assert single == f"{good}: moved aside to {data / 'spool' / 'aside' / good}"
    assert states(data) == {}
