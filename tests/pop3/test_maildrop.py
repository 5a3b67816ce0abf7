"""Tests of the maildrop module on a real Maildir (no server)."""

from __future__ import annotations

import os

import pytest

from mailpipe.access.pop3 import wire
from mailpipe.access.pop3.maildrop import (
    LOCK_NAME, Maildrop, MaildropInUse, locate, seen_name, split_name, uidl_for,
)
from mailpipe.access.pop3.sizecache import CACHE_NAME
from mailpipe.mailstore.maildir import deliver, ensure_maildir


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "Maildir"
    ensure_maildir(path)
    return path


def test_names():
    assert split_name("b,S=5:2,FS") == ("b,S=5", "FS")
    assert split_name("b,S=5") == ("b,S=5", None)
    assert seen_name("b", None) == "b:2,S"
    assert seen_name("b", "TRF") == "b:2,FRST"
    assert seen_name("b", "S") == "b:2,S"
    assert uidl_for("abc,S=5") == "abc,S=5"
    assert len(uidl_for("a b")) == 64 and uidl_for("a b") == uidl_for("a b")
    assert len(uidl_for("x" * 71)) == 64 and uidl_for("x" * 70) == "x" * 70


def test_lock_is_exclusive_within_one_process(root):
    first = Maildrop.open(root)
    with pytest.raises(MaildropInUse):
        Maildrop.open(root)
    first.close()
    Maildrop.open(root).close()
    assert (root / LOCK_NAME).exists()


def test_scan_sizes_cache_and_skips_dotfiles(root):
    deliver(root, [b"a\r\n.b\r\n"], base="m1")
    deliver(root, [b"clean\r\n"], base="m2")
    (root / "new" / ".hidden").write_bytes(b"x")
    drop = Maildrop.open(root)
    assert drop.listing().sizes == (wire.wire_size(b"a\r\n.b\r\n"), 7)
    assert drop.listing().uidls == ("m1,S=7", "m2,S=7")
    drop.close()
    cache = (root / CACHE_NAME).read_text()
    assert "m1,S=7\t8\n" in cache and "m2,S=7\t7\n" in cache
    os.unlink(root / "new" / "m2,S=7")
    Maildrop.open(root).close()
    assert "m2" not in (root / CACHE_NAME).read_text()     # pruned


def test_damaged_cache_is_ignored(root):
    deliver(root, [b"x\r\n"], base="m")
    (root / CACHE_NAME).write_bytes(b"\xff\xfegarbage\tnot-a-number\n\t\n")
    drop = Maildrop.open(root)
    assert drop.listing().sizes == (3,)
    drop.close()


def test_locate_follows_renames(root):
    deliver(root, [b"x\r\n"], base="m")
    assert locate(root, "m,S=3") == str(root / "new" / "m,S=3")
    os.rename(root / "new" / "m,S=3", root / "cur" / "m,S=3:2,T")
    assert locate(root, "m,S=3") == str(root / "cur" / "m,S=3:2,T")
    assert locate(root, "m,S") is None


def test_commit_removes_and_tolerates_missing(root):
    deliver(root, [b"x\r\n"], base="a")
    deliver(root, [b"y\r\n"], base="b")
    drop = Maildrop.open(root)
    os.unlink(root / "new" / "b,S=3")
    assert drop.commit((1, 2)) is True
    drop.close()
    assert os.listdir(root / "new") == [] and os.listdir(root / "cur") == []


def test_entries_that_are_not_regular_files_are_skipped(root):
    deliver(root, [b"ok\r\n"], base="good")
    (root / "new" / "bad,S=3").mkdir()          # a directory is skipped by the scan
    os.symlink(root / "nowhere", root / "new" / "dangling,S=3")
    drop = Maildrop.open(root)
    assert drop.listing().uidls == ("good,S=4",)
    drop.close()
