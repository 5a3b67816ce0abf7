"""An account database made before users had a mail host is upgraded in place when opened."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher

from mailpipe.mailstore.directory import open_directory

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
OLD_SCHEMA = """
CREATE TABLE domains (name VARCHAR(253) NOT NULL PRIMARY KEY);
CREATE TABLE users (address VARCHAR(320) NOT NULL PRIMARY KEY,
    domain VARCHAR(253) NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
    password_hash VARCHAR(255) NOT NULL, quota_bytes INTEGER NOT NULL);
CREATE TABLE aliases (source VARCHAR(320) NOT NULL, target VARCHAR(320) NOT NULL, PRIMARY KEY (source, target));
CREATE TABLE directory_generation (id INTEGER NOT NULL PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO domains VALUES ('example.test');
INSERT INTO users VALUES ('alice@example.test', 'example.test', 'x', 0);
"""


def test_an_old_database_gets_the_mail_host_column_and_keeps_its_users(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    url = f"sqlite:///{path}"
    with ThreadPoolExecutor(2) as pool:          # two processes starting at once: both succeed
        opened = list(pool.map(lambda _: open_directory(url, hasher=FAST), range(2)))
    directory = opened[0]
    try:
        assert directory.mailbox("alice@example.test").mail_host is None
        directory.set_mail_host("alice@example.test", "mh1")
        assert directory.mailbox("alice@example.test").mail_host == "mh1"
    finally:
        for d in opened:
            d.close()
    again = open_directory(url, hasher=FAST)     # idempotent
    try:
        assert again.mailbox("alice@example.test").mail_host == "mh1"
    finally:
        again.close()
