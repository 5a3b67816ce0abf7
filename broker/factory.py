"""The one place that looks at the kind of ``broker_url``: ``open_broker(config)``.

Must not: be bypassed. Every other module asks the Broker it is given (or opens
here) instead of looking at the URL.
"""

from __future__ import annotations

import importlib

from mailpipe.broker.base import Broker
from mailpipe.core.config import Config
from mailpipe.core.errors import ConfigError

#: URL scheme -> module and class of the implementation, imported only when chosen (kombu
#: and redis cost a CLI command such as ``queue status`` a tenth of a second to import)
KINDS: dict[str, tuple[str, str]] = {
    "spool": ("mailpipe.broker.embedded", "EmbeddedBroker"),
    "amqp": ("mailpipe.broker.amqp_broker", "AmqpBroker"),
    "pyamqp": ("mailpipe.broker.amqp_broker", "AmqpBroker"),
    "redis": ("mailpipe.broker.redis_broker", "RedisBroker"),
    "rediss": ("mailpipe.broker.redis_broker", "RedisBroker"),
}


def broker_class(url: str) -> type[Broker]:
    scheme = url.partition("://")[0].lower()
    try:
        module, name = KINDS[scheme]
    except KeyError:
        raise ConfigError(f"broker_url {url.rpartition('@')[2]!r}: unknown scheme {scheme!r}; "
                          f"use spool://, amqp:// or redis://") from None
    found: type[Broker] = getattr(importlib.import_module(module), name)
    return found


def open_broker(config: Config) -> Broker:
    return broker_class(config.broker_url)(config)
