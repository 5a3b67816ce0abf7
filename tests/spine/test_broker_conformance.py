"""The Broker conformance suite: every implementation (embedded, RabbitMQ, Redis) passes it.

Publishes go through the implementation's own (hand-built) task messages and are
consumed by a real Celery worker of the installed Celery version, with the same
settings ``mailpipe worker`` uses; the task must run with the queue IDs that
were published. The hand-built message must carry what Celery's ``send_task``
puts in its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection

from mailpipe.broker import Broker, QUEUE_STAGES, open_broker, queue_name, task_name
from mailpipe.broker.factory import broker_class
from mailpipe.core.config import Config
from mailpipe.core.errors import BrokerUnavailable, ConfigError
from mailpipe.workers.app import celery_settings
from mailpipe.broker.topology import kombu_queue
from tests.spine.conftest import QUORUM_BROKERS
from tests.support import free_port, wait_for

ID = "0123456789ABCDEF"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=QUORUM_BROKERS)
def broker_kind(request):
    return request.param


@pytest.fixture
def config(tmp_path, broker_url, broker_settings):
    return Config(data_dir=tmp_path / "data", broker_url=broker_url, queue_prefix=f"conf-{tmp_path.name[-12:]}.",
                  **broker_settings)


@pytest.fixture
def broker(config):
    broker = open_broker(config)
    try:
        yield broker
    finally:
        broker.close()


def run_celery_worker_until(config: Config, broker: Broker, tmp_path: Path, count: int) -> list:
    """Start a real ``celery worker`` (subprocess) on the stage queues until ``count`` tasks ran."""
    out = tmp_path / "seen.jsonl"
    env = {**os.environ, "MPTEST_BROKER_URL": config.broker_url, "MPTEST_DATA_DIR": str(config.data_dir),
           "MPTEST_PREFIX": config.queue_prefix, "MPTEST_OUT": str(out),
           "MPTEST_QUEUE_TYPE": config.broker.queue_type}
    queues = ",".join(queue_name(config, s) for s in QUEUE_STAGES)
    argv = [sys.executable, "-m", "celery", "-A", "tests.spine.celery_recorder", "worker", "-P", "solo",
            "-Q", queues, "--without-mingle", "--without-gossip", "-l", "WARNING", "-n", f"rec{os.getpid()}@%h",
            *broker.worker_argv()]
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def seen() -> list:
            return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        wait_for(lambda: len(seen()) >= count or worker.poll() is not None, 60, what=f"{count} tasks")
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        return seen()
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()


def test_the_factory_picks_one_implementation_per_kind():
    assert broker_class("spool://").kind == "embedded"
    assert broker_class("amqp://guest@h//").kind == broker_class("pyamqp://h//").kind == "amqp"
    assert broker_class("redis://h/1").kind == broker_class("rediss://h/1").kind == "redis"
    with pytest.raises(ConfigError, match="unknown scheme 'kafka'"):
        broker_class("kafka://secret@h")


def test_published_ids_run_in_a_real_celery_worker(tmp_path, config, broker):
    broker.publish("local", [ID])
    broker.publish("route", ["A1", "A2", "A3"])                   # a group commit: one message
    broker.publish("remote", ["B1"], redelivered=True)            # the sweeper's republish
    seen = run_celery_worker_until(config, broker, tmp_path, 3)
    assert sorted(s[:3] for s in seen) == [["local", ID, False], ["remote", "B1", True],
                                           ["route", ["A1", "A2", "A3"], False]]
    assert len({s[3] for s in seen}) == 3                         # each its own task id


def test_the_hand_built_message_carries_what_send_task_puts_in(config, broker):
    app = Celery("plain", broker=config.broker_url, set_as_current=False)
    app.conf.update(celery_settings(config, broker))
    queue = queue_name(config, "local")
    broker.publish("local", [ID], redelivered=True)
    app.send_task(task_name("local"), args=[ID], kwargs={"redelivered": True}, queue=queue, routing_key=queue)
    got = []
    with Connection(config.broker_url, transport_options=broker.celery_options()["broker_transport_options"]) as conn:
        with conn.SimpleQueue(kombu_queue(config, "local", broker.queue_arguments())) as q:
            for _ in range(2):
                message = q.get(timeout=10)
                got.append((message.headers, message.decode()))
                message.ack()
    (h1, body1), (h2, body2) = got
    assert body1 == body2 == [[ID], {"redelivered": True},
                              {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    assert set(h1) == set(h2) and h1["task"] == h2["task"] == "mailpipe.local" and h1["id"] != h2["id"]


def test_depths_and_the_backlog_probe_count_ready_messages(broker):
    probe = broker.backlog_probe("smtp_in")
    try:
        assert probe() == 0                                        # nothing declared or published yet
        broker.publish("smtp_in", ["A1", "A2"])
        broker.publish("smtp_in", ["B1"])
        broker.publish("remote", ["C1"])
        wait_for(lambda: probe() == 2, 10, what="two ready messages on smtp_in")
        depths = {d.stage: d for d in broker.depths()}
        assert list(depths) == list(QUEUE_STAGES)
        assert depths["smtp_in"].depth == 2 and depths["remote"].depth == 1 and depths["local"].depth == 0
    finally:
        probe.close()


def test_a_broker_that_cannot_be_reached_fails_publish_and_says_so(tmp_path, broker):
    config = broker.config
    if broker.kind == "embedded":
        config.data_dir.mkdir(parents=True, exist_ok=True)
        (config.data_dir / "broker").write_text("a file where the broker folder should be")
        down = open_broker(config)
    else:
        scheme = config.broker_url.partition("://")[0]
        down = open_broker(config.model_copy(update={"broker_url": f"{scheme}://127.0.0.1:{free_port()}/0"}))
    ok, reason = down.reachable(2.0)
    assert not ok and "\n" not in reason and ("cannot connect" in reason or "not writable" in reason)
    with pytest.raises(BrokerUnavailable, match="publish to smtp_in failed"):
        down.publish("smtp_in", [ID])
    assert all(d.depth is None for d in down.depths())
    down.close()


def test_a_reachable_broker_says_where_it_is_without_credentials(broker):
    ok, reason = broker.reachable(5.0)
    assert ok, reason
    assert "guest:guest" not in reason + broker.describe()
    assert broker.recovery and isinstance(broker.celery_options(), dict)


def test_publish_is_safe_from_many_threads(config, broker):
    errors: list = []

    def publish(k: int) -> None:
        try:
            for i in range(20):
                broker.publish("rules", [f"T{k}-{i}"])
        except Exception as exc:       # any error fails the test below
            errors.append(exc)
    threads = [threading.Thread(target=publish, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    wait_for(lambda: {d.stage: d.depth for d in broker.depths()}["rules"] == 80, 10, what="80 messages on rules")


def test_stage_queues_have_the_configured_rabbitmq_queue_type(config, broker, broker_kind):
    """``[broker] queue_type``: RabbitMQ declares the stage queues classic or quorum, as asked."""
    if not broker_kind.startswith("rabbitmq"):
        assert broker.queue_arguments() == {}                      # other kinds ignore the key
        return
    broker.publish("smtp_in", [ID])                                # declares every stage queue
    vhost = config.broker_url.rpartition("/")[2]
    listing = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    types = dict(line.split("\t")[:2] for line in listing.splitlines() if line.startswith(config.queue_prefix))
    expected = "quorum" if broker_kind == "rabbitmq-quorum" else "classic"
    assert {queue_name(config, s): expected for s in QUEUE_STAGES} == types
