"""The message broker seam: one ``Broker`` interface, one implementation per kind.

- ``base.py``: the interface (``Broker``, ``QueueDepth``, ``BacklogProbe``) and its error rules;
- ``factory.py``: ``open_broker(config)``, the only place that looks at ``broker_url``'s kind;
- ``embedded.py`` + ``embedded_transport.py``: ``spool://``, folders under ``DATA/broker``;
- ``networked.py``: what RabbitMQ (``amqp_broker.py``) and Redis (``redis_broker.py``) share through kombu;
- ``topology.py``: queue and task names; ``message.py``: Celery's task message, built by hand.

Layer: below workers, ingress and access; imports only ``core`` (and kombu).
"""

from mailpipe.broker.base import BacklogProbe, Broker, QueueDepth
from mailpipe.broker.factory import open_broker
from mailpipe.broker.topology import QUEUE_STAGES, queue_name, task_name

__all__ = ["BacklogProbe", "Broker", "QueueDepth", "QUEUE_STAGES", "open_broker", "queue_name", "task_name"]
