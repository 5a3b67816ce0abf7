"""The one place that looks at the kind of ``broker_url``: ``open_broker(config)``.

Must not: be bypassed. Every other module asks the Broker it is given (or opens
here) instead of looking at the URL.
"""

from __future__ import annotations

from mailpipe.broker.amqp_broker import AmqpBroker
from mailpipe.broker.base import Broker
from mailpipe.broker.embedded import EmbeddedBroker
from mailpipe.broker.redis_broker import RedisBroker
from mailpipe.core.config import Config
from mailpipe.core.errors import ConfigError

#: URL scheme -> implementation
KINDS: dict[str, type[Broker]] = {
    "spool": EmbeddedBroker,
    "amqp": AmqpBroker, "pyamqp": AmqpBroker,
    "redis": RedisBroker, "rediss": RedisBroker,
}


def broker_class(url: str) -> type[Broker]:
    scheme = url.partition("://")[0].lower()
    try:
        return KINDS[scheme]
    except KeyError:
        raise ConfigError(f"broker_url {url.rpartition('@')[2]!r}: unknown scheme {scheme!r}; "
                          f"use spool://, amqp:// or redis://") from None


def open_broker(config: Config) -> Broker:
    return broker_class(config.broker_url)(config)
