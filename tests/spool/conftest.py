"""The conformance suite's fixtures: every test runs once per backend in ``backends.BACKENDS``.

The ``pg`` backend uses one throw-away database per test session (per xdist worker),
created on first use, emptied before each test and dropped at the end.
"""

from __future__ import annotations

import pytest

from tests.spool.backends import BACKENDS, PostgresBackend, make
from tests.spool.pgdb import throwaway_database


@pytest.fixture(scope="session")
def pg_url():
    with throwaway_database() as url:
        PostgresBackend(url).open().close()       # the schema, once
        yield url


@pytest.fixture(params=[pytest.param(b, marks=pytest.mark.postgres) if b == "pg" else b for b in BACKENDS])
def backend(request, tmp_path):
    if request.param != "pg":
        return make(request.param, tmp_path)
    chosen = make("pg", tmp_path, request.getfixturevalue("pg_url"))
    chosen.empty()
    return chosen


@pytest.fixture
def spool(backend):
    yield (opened := backend.open())
    getattr(opened, "close", lambda: None)()
