"""Bounded lookup caches for a directory: LRU with a time to live, and a change watch.

Owns: ``BoundedCache`` (at most ``max_entries`` entries, each valid for ``ttl``
seconds, least recently used dropped first; thread-safe) and ``ChangeWatch``,
which asks a callback for the directory's change generation at most every
``interval`` seconds and says when it moved, so that the caller clears its
caches. Time comes from an injected monotonic clock (tests pass a fake one).

Must not: know what is cached, or query anything itself.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

from mailpipe.core.clock import Clock

K = TypeVar("K")
V = TypeVar("V")
_MISSING = object()


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


class BoundedCache(Generic[K, V]):
    def __init__(self, max_entries: int, ttl: float, clock: Clock) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._epoch = 0       # bumped by clear(): a value loaded before it is not stored after it

    @property
    def epoch(self) -> int:
        """Pass to ``put`` a value loaded after reading this, so a ``clear`` in between wins."""
        return self._epoch

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K, default: V | None = None) -> V | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return default
            if item[0] <= self.clock.now():
                del self._data[key]
                return default
            self._data.move_to_end(key)
            return item[1]

    def put(self, key: K, value: V, epoch: int | None = None) -> None:
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            self._data[key] = (self.clock.now() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._epoch += 1

    def lookup(self, key: K, load: Callable[[K], V]) -> V:
        """The cached value, or ``load(key)`` (outside the lock), cached."""
        epoch = self.epoch
        found = self.get(key, _MISSING)   # type: ignore[arg-type]
        if found is not _MISSING:
            return found                  # type: ignore[return-value]
        value = load(key)
        self.put(key, value, epoch)
        return value


class ChangeWatch:
    """Polls a generation counter at most every `interval` seconds; True when it moved."""

    def __init__(self, read: Callable[[], int], interval: float, clock: Clock) -> None:
        self.read = read
        self.interval = interval
        self.clock = clock
        self._seen: int | None = None
        self._next = 0.0
        self._lock = threading.Lock()

    def changed(self) -> bool:
        now = self.clock.now()
        if now < self._next:
            return False
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.interval
            value = self.read()
            moved = self._seen is not None and value != self._seen
            self._seen = value
            return moved
