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

    def celery_options(self) -> dict[str, Any]:
        return {**super().celery_options(), "worker_enable_prefetch_count_reduction": False}
