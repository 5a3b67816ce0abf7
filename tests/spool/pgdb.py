"""Throw-away PostgreSQL databases on the shared server (127.0.0.1:5432, trust auth, user postgres).

``throwaway_database()`` creates ``mptest_spool_<random>`` and yields its URL;
afterwards it drops that database (and only that one), ending any session still
connected to it. Outside CI a missing server skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text

from tests.support import need_server

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def database_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@contextlib.contextmanager
def throwaway_database(prefix: str = "mptest_spool") -> Iterator[str]:
    need_server(5432, "PostgreSQL")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield database_url(name)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
