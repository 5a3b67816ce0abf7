"""RabbitMQ (``amqp://``, ``pyamqp://``): durable queues, persistent messages, confirmed publishes.

Recovery: RabbitMQ requeues a consumer's unacknowledged messages when its
connection closes (crash, network, broker restart) and marks them redelivered.
After a reconnect Celery would lower the worker's prefetch count and raise it
again with ``basic.qos`` calls made from the ack path; with the threads pool those
race the main thread on the same connection and the worker stalled for about
3 minutes after a broker restart (celery issue 9512, PR 10253;
``tests/spine/test_broker_restart.py``). ``worker_enable_prefetch_count_reduction
= False`` turns that off: the worker reconnects with its full prefetch at once,
which is what late acks with a small prefetch want anyway.

Quorum queues (``[broker] queue_type = "quorum"``): every stage queue is declared
with ``x-queue-type: quorum`` (durable, replicated by RabbitMQ's Raft log). They
support only per-consumer QoS: Celery sees the argument in ``task_queues`` and,
with ``worker_detect_quorum_queues`` (on, set here explicitly), sends ``basic.qos``
without the global flag. A vhost whose queues were declared classic refuses the
quorum declare (PRECONDITION_FAILED): drain and delete them, or use a new vhost.

Must not: hold a channel across threads (kombu channels are not thread-safe).
"""

from __future__ import annotations

from typing import Any

from mailpipe.broker.networked import NetworkedBroker, NotDeclared


class AmqpBroker(NetworkedBroker):
    kind = "amqp"
    recovery = ("the broker requeues a consumer's unacknowledged messages (redelivered) when its "
                "connection closes; a reconnected worker resumes with its full prefetch")

    def transport_options(self) -> dict[str, Any]:
        return {"confirm_publish": True}

    def _count(self, channel: Any, queue: str) -> tuple[int, int | None]:
        try:
            _, depth, consumers = channel.queue_declare(queue, passive=True)
        except Exception as exc:
            if getattr(exc, "code", None) == 404 or getattr(exc, "reply_code", None) == 404:
                raise NotDeclared(queue) from None
            raise
        return depth, consumers

    def queue_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"} if self.config.broker.queue_type == "quorum" else {}

    def celery_options(self) -> dict[str, Any]:
        return {**super().celery_options(), "worker_enable_prefetch_count_reduction": False,
                "worker_detect_quorum_queues": True}
