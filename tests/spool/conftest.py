"""The conformance suite's fixtures: every test runs once per backend in ``backends.BACKENDS``."""

from __future__ import annotations

import pytest

from tests.spool.backends import BACKENDS, make


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    return make(request.param, tmp_path)


@pytest.fixture
def spool(backend):
    return backend.open()
