from __future__ import annotations

import pytest

from tests.support import ServeProcess, add_accounts, drop_vhost, rabbitmq_vhost

USERS = ["alice", "carol", "dave", "erin", "frank", "grace"]


@pytest.fixture(scope="module", params=["embedded", "rabbitmq"])
def broker_url(request):
    if request.param == "embedded":
        yield "spool://"
        return
    vhost = rabbitmq_vhost()
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        drop_vhost(vhost)


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
