"""Publishing a queue ID to a stage queue, as lean as the broker allows.

The task message is built here in exactly the form Celery's ``send_task``
produces (task protocol 2), without its per-call machinery, which saves about
a millisecond of CPU per message on the ingress's hot path:

- embedded broker: written straight into the broker directory in the format
  the kombu transport reads;
- RabbitMQ: one kombu producer per thread on a confirmed channel
  (``confirm_publish``), the stage queues declared once per connection.

``celery_publish`` (Celery's own ``send_task``) serves the other brokers.
``tests/spine/test_publisher.py`` checks that the lean messages equal Celery's.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import uuid

from celery import Celery
from kombu import Producer

from mailpipe.core.errors import BrokerUnavailable
from mailpipe.workers.embedded_broker import BrokerDir

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def task_message(task: str, queue_id: str | list[str], redelivered: bool, origin: str) -> tuple[str, dict, bytes]:
    """(task id, headers, body) of one stage task, as Celery's task protocol 2 has them.

    ``queue_id`` is one ID, or a list of IDs accepted together (``ingress.committer``)."""
    task_id = str(uuid.uuid4())
    kwargs = {"redelivered": True} if redelivered else {}
    body = json.dumps([[queue_id], kwargs, _EMBED]).encode()
    headers = {"lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
               "expires": None, "group": None, "group_index": None, "retries": 0,
               "timelimit": [None, None], "root_id": task_id, "parent_id": None,
               "argsrepr": repr([queue_id]), "kwargsrepr": repr(kwargs), "origin": origin,
               "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}}
    return task_id, headers, body


class EmbeddedPublisher:
    def __init__(self, data_dir, queue_name, task_name) -> None:
        self.broker = BrokerDir(os.path.join(data_dir, "broker"))
        self.queue_name, self.task_name = queue_name, task_name
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"

    def payload(self, stage: str, queue_id: str | list[str], redelivered: bool) -> bytes:
        task_id, headers, body = task_message(self.task_name(stage), queue_id, redelivered, self.origin)
        properties = {"correlation_id": task_id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
                      "delivery_info": {"exchange": "", "routing_key": self.queue_name(stage)},
                      "delivery_tag": str(uuid.uuid4())}
        message = {"body": base64.b64encode(body).decode(), "content-encoding": "utf-8",
                   "content-type": "application/json", "headers": headers, "properties": properties}
        return json.dumps(message).encode()

    def __call__(self, stage: str, queue_id: str | list[str], redelivered: bool = False) -> None:
        try:
            self.broker.put(self.queue_name(stage), self.payload(stage, queue_id, redelivered))
        except OSError as exc:
            raise BrokerUnavailable(f"publish to {stage} failed: {exc.strerror or exc}") from None


class AmqpPublisher:
    """One confirmed kombu producer per thread; any error drops that thread's connection."""

    def __init__(self, app: Celery, queue_name, task_name) -> None:
        self.app, self.queue_name, self.task_name = app, queue_name, task_name
        self.origin = f"gen{os.getpid()}@{socket.gethostname()}"
        self._local = threading.local()

    def _producer(self) -> Producer:
        producer = getattr(self._local, "producer", None)
        if producer is None:
            conn = self.app.connection_for_write()
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            for queue in self.app.amqp.queues.values():
                queue(channel).declare()
            self._local.conn, self._local.producer = conn, Producer(channel)
            producer = self._local.producer
        return producer

    def __call__(self, stage: str, queue_id: str | list[str], redelivered: bool = False) -> None:
        task_id, headers, body = task_message(self.task_name(stage), queue_id, redelivered, self.origin)
        queue = self.queue_name(stage)
        try:
            self._producer().publish(body, exchange="mailpipe", routing_key=queue, headers=headers,
                                     content_type="application/json", content_encoding="utf-8",
                                     delivery_mode=2, correlation_id=task_id, retry=False)
        except Exception as exc:          # amqp/kombu/socket errors all mean "not confirmed"
            self._drop()
            raise BrokerUnavailable(f"publish to {stage} failed: {type(exc).__name__}: {exc}") from None

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = self._local.producer = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def celery_publish(app: Celery, stage: str, queue_id: str | list[str], redelivered: bool = False) -> None:
    """Celery's send_task; returns only once the broker confirmed the message."""
    from mailpipe.workers.app import queue_name, task_name
    config = app.mailpipe_config
    try:
        app.send_task(task_name(stage), args=[queue_id], kwargs={"redelivered": True} if redelivered else None,
                      queue=queue_name(config, stage), routing_key=queue_name(config, stage), ignore_result=True)
    except Exception as exc:          # kombu/amqp raise many types; all mean "not confirmed"
        raise BrokerUnavailable(f"publish to {stage} failed: {type(exc).__name__}: {exc}") from None
