"""The embedded broker's lean publisher writes what Celery's send_task would."""

from __future__ import annotations

from kombu import Connection

from mailpipe.core.config import Config
from mailpipe.workers import embedded_broker
from mailpipe.workers.app import create_app, publish, queue_name
from mailpipe.workers.publisher import celery_publish


def consume_all(data_dir, queue: str) -> list:
    embedded_broker.register()
    out = []
    with Connection("spool://", transport_options={"data_dir": str(data_dir)}) as conn:
        with conn.SimpleQueue(queue) as q:
            for _ in range(2):
                message = q.get(timeout=2)
                out.append((message.headers, message.decode(), message.properties))
                message.ack()
    return out


def test_fast_path_matches_send_task(tmp_path):
    config = Config(data_dir=tmp_path, queue_prefix="t_")
    app = create_app(config)
    celery_publish(app, "local", "0123456789ABCDEF", redelivered=True)     # Celery's own message
    publish(app, "local", "0123456789ABCDEF", redelivered=True)            # the fast path
    (h1, body1, p1), (h2, body2, p2) = consume_all(tmp_path, queue_name(config, "local"))
    assert body1 == body2 == [["0123456789ABCDEF"], {"redelivered": True},
                              {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    assert h1.keys() == h2.keys()
    assert h2["task"] == h1["task"] == "mailpipe.local" and h2["id"] != h1["id"]
    assert p2["delivery_info"]["routing_key"] == "t_local"


def test_amqp_fast_path_matches_send_task():
    from tests.support import drop_vhost, rabbitmq_vhost
    vhost = rabbitmq_vhost()
    try:
        config = Config(broker_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}", queue_prefix="t_")
        app = create_app(config)
        celery_publish(app, "route", "0123456789ABCDEF")
        publish(app, "route", "0123456789ABCDEF")                              # lean, confirmed
        got = []
        with Connection(config.broker_url) as conn:
            with conn.SimpleQueue(queue_name(config, "route")) as q:
                for _ in range(2):
                    message = q.get(timeout=5)
                    got.append((message.headers, message.decode(), message.delivery_info["routing_key"]))
                    message.ack()
        (h1, body1, key1), (h2, body2, key2) = got
        assert body1 == body2 and h1.keys() == h2.keys() and h1["task"] == h2["task"] == "mailpipe.route"
        assert key1 == key2 == "t_route"
    finally:
        drop_vhost(vhost)
