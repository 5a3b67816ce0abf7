"""The broker suite: every test here that takes ``broker_url`` runs on each Broker kind.

Embedded (``spool://``), RabbitMQ (a throw-away vhost on the shared server) and
Redis (a database of the shared server claimed for the module, flushed after).
Modules that also run on RabbitMQ with quorum queues (``rabbitmq-quorum``, its own
vhost) override ``broker_kind`` with ``QUORUM_BROKERS`` and pass ``broker_settings``
(config keys) or ``broker_toml`` (the same as TOML) on to the config.
``test_broker_conformance.py`` is the Broker interface's conformance suite; the
end-to-end tests (serve, flow control, group commit, crash) run on the same kinds.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support import ServeProcess, add_accounts, drop_vhost, need_server, rabbitmq_vhost

USERS = ["alice", "carol", "dave", "erin", "frank", "grace"]
BROKERS = ["embedded", "rabbitmq", "redis"]
QUORUM_BROKERS = BROKERS + ["rabbitmq-quorum"]
REDIS_DBS = range(1, 16)        #: db 0 is left alone; a module claims a free one
CLAIM_KEY = "mailpipe-test-claim"


def claim_redis_db() -> tuple[int, str]:
    """A Redis database nobody uses (empty), claimed with a key only this test holds."""
    need_server(6379, "Redis")
    import redis
    token = uuid.uuid4().hex
    for db in REDIS_DBS:
        client = redis.Redis(host="127.0.0.1", port=6379, db=db, socket_timeout=5)
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True):
                return db, token
        finally:
            client.close()
    pytest.fail("no free Redis database on 127.0.0.1:6379 (all of 1-15 hold keys)")


def release_redis_db(db: int, token: str) -> None:
    import redis
    client = redis.Redis(host="127.0.0.1", port=6379, db=db, socket_timeout=5)
    try:
        if client.get(CLAIM_KEY) == token.encode():
            client.flushdb()
    finally:
        client.close()


def broker_for(kind: str):
    """A generator: yield a broker URL of that kind, clean up after."""
    if kind == "embedded":
        yield "spool://"
    elif kind in ("rabbitmq", "rabbitmq-quorum"):
        vhost = rabbitmq_vhost()
        try:
            yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        finally:
            drop_vhost(vhost)
    else:
        db, token = claim_redis_db()
        try:
            yield f"redis://127.0.0.1:6379/{db}"
        finally:
            release_redis_db(db, token)


@pytest.fixture(scope="module", params=BROKERS)
def broker_kind(request):
    return request.param


@pytest.fixture(scope="module")
def broker_url(broker_kind):
    yield from broker_for(broker_kind)


@pytest.fixture(scope="module")
def broker_settings(broker_kind) -> dict:
    """Config keys of the broker kind under test beyond its URL."""
    return {"broker": {"queue_type": "quorum"}} if broker_kind == "rabbitmq-quorum" else {}


@pytest.fixture(scope="module")
def broker_toml(broker_settings) -> str:
    """``broker_settings`` as a TOML table (empty for the plain kinds)."""
    queue_type = broker_settings.get("broker", {}).get("queue_type")
    return f'[broker]\nqueue_type = "{queue_type}"\n' if queue_type else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory, broker_url):
    srv = ServeProcess(tmp_path_factory.mktemp("serve"), broker_url=broker_url)
    add_accounts(srv.data_dir, "example.test", USERS,
                 [("team@example.test", "carol@example.test"), ("team@example.test", "dave@example.test")])
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
