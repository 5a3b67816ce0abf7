"""The ``Directory`` contract, run against every implementation (SQL and in-memory), and the
SQL directory's bounded caches and change generation (pure: fake clocks, no sleeping)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from mailpipe.core.clock import FakeClock
from mailpipe.mailstore.directory import Mailbox, MemoryDirectory, open_directory
from mailpipe.mailstore.directory.cache import BoundedCache

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(params=["sql", "memory"])
def directory(request, tmp_path):
    d = open_directory(f"sqlite:///{tmp_path}/db", hasher=FAST) if request.param == "sql" \
        else MemoryDirectory(hasher=FAST)
    d.add_domain("Example.TEST")
    d.add_user("Alice@example.test", "s3cret")
    d.add_user("bob@example.test", "pw")
    d.add_alias("team@example.test", "alice@example.test")
    d.add_alias("team@example.test", "bob@example.test")
    d.add_alias("loop1@example.test", "loop2@example.test")
    d.add_alias("loop2@example.test", "loop1@example.test")
    yield d
    d.close()


def test_lookups(directory):
    assert directory.is_local_domain("EXAMPLE.test.") and not directory.is_local_domain("foreign.test")
    assert directory.expand("ALICE@example.test.") == ["alice@example.test"]
    assert directory.expand("team@example.test") == ["alice@example.test", "bob@example.test"]
    assert directory.expand("loop1@example.test") == [] and directory.expand("nobody@example.test") == []
    assert directory.expand("not an address") == [] and directory.expand("\udcff@example.test") == []
    assert directory.mailbox("alice@example.test") == Mailbox("alice@example.test", "example.test", "alice")
    assert directory.mailbox("team@example.test") is None
    assert directory.owns_sender("alice@example.test", "team@example.test")
    assert not directory.owns_sender("alice@example.test", "bob@example.test")


def test_catch_all(directory):
    directory.add_alias("@example.test", "alice@example.test")
    assert directory.expand("anything@example.test") == ["alice@example.test"]
    assert directory.expand("bob@example.test") == ["bob@example.test"]     # a user is itself


def test_authenticate(directory):
    assert directory.authenticate("ALICE@example.test", "s3cret") == "alice@example.test"
    assert directory.authenticate("alice@example.test", "wrong") is None
    assert directory.authenticate("nobody@example.test", "s3cret") is None
    assert directory.authenticate("\udcff\udcfe@example.test", "s3cret") is None     # never raises
    assert directory.authenticate("alice@example.test", "\udcff") is None
    directory.set_password("alice@example.test", "new")
    assert directory.authenticate("alice@example.test", "s3cret") is None
    directory.remove_user("alice@example.test")
    assert directory.authenticate("alice@example.test", "new") is None
    assert directory.expand("team@example.test") == ["bob@example.test"]


def test_remove_domain_counts(directory):
    assert directory.domain_contents("example.test").users == ("alice@example.test", "bob@example.test")
    removed = directory.remove_domain("example.test")
    assert (len(removed.users), removed.aliases) == (2, 4)
    assert not directory.is_local_domain("example.test") and directory.users() == []


def test_a_change_in_another_process_is_seen_after_one_check_interval(tmp_path):
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/db"
    server = open_directory(url, hasher=FAST, clock=clock, check_interval=1.0)
    cli = open_directory(url, hasher=FAST)                # "another process": its own caches
    cli.add_domain("example.test")
    cli.add_user("hank@example.test", "pw")
    assert server.authenticate("hank@example.test", "pw") == "hank@example.test"   # now cached
    assert server.expand("new@example.test") == []                                  # cached "no"
    cli.remove_user("hank@example.test")
    cli.add_alias("new@example.test", "hank2@example.test")
    cli.add_user("hank2@example.test", "pw")
    clock.advance(1.01)
    assert server.authenticate("hank@example.test", "pw") is None
    assert server.expand("new@example.test") == ["hank2@example.test"]


def test_caches_are_bounded(tmp_path):
    clock = FakeClock()
    d = open_directory(f"sqlite:///{tmp_path}/db", hasher=FAST, clock=clock, cache_entries=50)
    d.add_domain("example.test")
    d.add_user("alice@example.test", "pw")
    for i in range(500):
        d.expand(f"user{i}@example.test")
        d.is_local_domain(f"d{i}.test")
        d.authenticate("alice@example.test", "pw")
    assert all(0 < len(cache) <= 50 for cache in d._caches)    # type: ignore[attr-defined]
    assert d.expand("alice@example.test") == ["alice@example.test"]


def test_bounded_cache_drops_least_recent_and_expired():
    clock = FakeClock()
    cache: BoundedCache[str, int] = BoundedCache(3, ttl=10.0, clock=clock)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    cache.get("a")
    cache.put("d", 3)                       # "b" was least recently used
    assert [cache.get(k) for k in "abcd"] == [0, None, 2, 3] and len(cache) == 3
    clock.advance(10.0)
    assert cache.get("a") is None and cache.lookup("a", lambda _k: 7) == 7


def test_mail_host_of_a_user_and_moving_it(directory):
    from mailpipe.core.errors import AccountError
    assert directory.mailbox("alice@example.test").mail_host is None             # the default mail host
    directory.add_user("carol@example.test", "pw", mail_host="MH1")
    assert directory.mailbox("carol@example.test").mail_host == "mh1"
    directory.set_mail_host("alice@example.test", "mh2")
    assert directory.mailbox("alice@example.test").mail_host == "mh2"
    directory.set_mail_host("alice@example.test", None)
    assert directory.mailbox("alice@example.test").mail_host is None
    with pytest.raises(AccountError, match="mail host 'mh 1'"):
        directory.set_mail_host("bob@example.test", "mh 1")
    with pytest.raises(AccountError, match="no such user"):
        directory.set_mail_host("nobody@example.test", "mh1")
    with pytest.raises(AccountError, match="mail host"):
        directory.add_user("dave@example.test", "pw", mail_host="../x")
