"""The embedded broker's kombu transport (``spool://``): a local directory, safe against kill -9.

No stock kombu transport survives a crash test (see the project notes): the
stock ``filesystem://`` transport can hand out a half-written file and forgets
what a dead consumer had fetched. This one keeps every message in a file for
its whole life::

    DATA/broker/tmp/                      publish writes here ...
    DATA/broker/ready/<queue>/<name>      ... then renames here (atomic publish)
    DATA/broker/inflight/<queue>/<pid>-<name>
                                          a consumer claims by atomic rename
                                          (only one rename can win); ack = rename to
    DATA/broker/spare/<pid>-<n>           where publish takes its next file from

A message whose claiming process is dead (``kill -9``) goes back to ``ready``,
marked as redelivered (name suffix ``.r``, ``delivery_info["redelivered"]``):
every consumer checks the in-flight folders of its queues at start and every
few seconds, and ``recover_dead`` can be called by a supervisor. Clean
shutdown and ``reject(requeue=True)`` rename back too. Routing is by routing key
= queue name (direct), which is the only topology mailpipe uses, so no
exchange state has to be shared between processes.

Acked files are recycled, not deleted: on ext4 creating and deleting files
gets dear under this churn (about 1 ms of kernel CPU per create on this kind of
machine, docs/design.md), while a rename costs a few microseconds.

Use with the ``threads`` or ``solo`` pool (billiard's prefork pool can deadlock
when a child dies on a non-AMQP transport). The URL is ``spool://`` and the
directory comes from ``transport_options={"data_dir": ...}``.

Must not: know stages, tasks or Celery (``broker/embedded.py`` is the Broker on top).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import socket
import time
from collections import deque
from pathlib import Path
from queue import Empty

from kombu.transport import TRANSPORT_ALIASES, virtual

from mailpipe.core.files import write_all
from mailpipe.core.procs import pid_alive

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
RECOVER_EVERY = 2.0
STABLE_NS = 50_000_000      #: 50 ms: an empty folder unchanged for this long is not listed again
REDELIVERED = ".r"          #: name suffix of a message recovered from a dead consumer
SPARE_RELIST = 0.05         #: s between listings of the spare folder when this process knows none
SPARE_BATCH = 256           #: spare names taken from one listing


def queue_dir_name(queue: str) -> str:
    return _SAFE.sub("_", queue)


class BrokerDir:
    """The directory operations, usable without kombu (queue status, recovery)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._ready: dict[str, Path] = {}
        self._inflight: dict[str, Path] = {}
        self.spare = self.root / "spare"
        self.spare.mkdir(parents=True, exist_ok=True)
        self._spares: deque[str] = deque()
        self._spares_listed = -SPARE_RELIST
        self._spare_prefix = f"{os.getpid()}-{time.time_ns()}-"
        self._recycled = itertools.count()

    def ready(self, queue: str) -> Path:
        return self._queue_dir(self._ready, "ready", queue)

    def inflight(self, queue: str) -> Path:
        return self._queue_dir(self._inflight, "inflight", queue)

    def _queue_dir(self, made: dict[str, Path], kind: str, queue: str) -> Path:
        """``root/<kind>/<queue>``, created on first use and remembered."""
        path = made.get(queue)
        if path is None:
            path = self.root / kind / queue_dir_name(queue)
            path.mkdir(parents=True, exist_ok=True)
            made[queue] = path
        return path

    def put(self, queue: str, payload: bytes) -> None:
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}"
        tmp = self.tmp / name
        fd = self._take_spare(tmp)
        if fd is None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, payload)
        finally:
            os.close(fd)
        os.rename(tmp, self.ready(queue) / name)

    def _take_spare(self, tmp: Path) -> int | None:
        """Claim a recycled file as ``tmp`` (emptied, open for writing), or None if there is none."""
        for _ in range(8):
            if not self._spares:
                now = time.monotonic()
                if now - self._spares_listed < SPARE_RELIST:
                    return None
                self._spares_listed = now
                try:
                    self._spares.extend(os.listdir(self.spare)[:SPARE_BATCH])
                except FileNotFoundError:
                    return None
                if not self._spares:
                    return None
            try:
                os.rename(f"{self.spare}/{self._spares.popleft()}", tmp)
            except (FileNotFoundError, IndexError):
                continue                            # another process or thread took it
            return os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        return None

    def recycle(self, path: str | Path) -> None:
        """An acked message file becomes a spare (a rename: no file is deleted)."""
        try:
            os.rename(path, f"{self.spare}/{self._spare_prefix}{next(self._recycled)}")
        except FileNotFoundError:
            pass

    def size(self, queue: str) -> int:
        return len(os.listdir(self.ready(queue)))

    def inflight_count(self, queue: str) -> int:
        return len(os.listdir(self.inflight(queue)))

    def purge(self, queue: str) -> int:
        count = 0
        for name in os.listdir(self.ready(queue)):
            with contextlib.suppress(FileNotFoundError):
                (self.ready(queue) / name).unlink()
                count += 1
        return count

    def recover_dead(self, queue: str) -> int:
        """Return messages claimed by dead processes to the ready folder."""
        inflight, restored = self.inflight(queue), 0
        for name in os.listdir(inflight):
            pid, _, original = name.partition("-")
            if pid.isdigit() and not pid_alive(int(pid)):
                marked = original if original.endswith(REDELIVERED) else original + REDELIVERED
                with contextlib.suppress(FileNotFoundError):
                    os.rename(inflight / name, self.ready(queue) / marked)
                    restored += 1
        return restored

    def queues(self) -> list[str]:
        ready = self.root / "ready"
        return sorted(os.listdir(ready)) if ready.exists() else []


class Channel(virtual.Channel):
    """A kombu virtual channel over ``BrokerDir``."""

    def __init__(self, connection, **kwargs) -> None:
        options = connection.client.transport_options
        self.dir = BrokerDir(Path(options["data_dir"]) / "broker")
        self._listing: dict[str, deque[str]] = {}
        self._claimed: dict[str, tuple[str, Path]] = {}
        self._last_recover: dict[str, float] = {}
        self._paths: dict[str, tuple[str, str]] = {}
        self._empty_at: dict[str, int | None] = {}
        super().__init__(connection, **kwargs)

    # routing: routing key == queue name (direct), no shared exchange state needed
    def _lookup(self, exchange, routing_key, default=None):
        return [routing_key]

    def _new_queue(self, queue, **kwargs):
        self.dir.ready(queue)
        self.dir.inflight(queue)

    def _has_queue(self, queue, **kwargs):
        return (self.dir.root / "ready" / queue_dir_name(queue)).is_dir()

    def _put(self, queue, message, **kwargs):
        self.dir.put(queue, json.dumps(message).encode())

    def _size(self, queue):
        return self.dir.size(queue)

    def _purge(self, queue):
        return self.dir.purge(queue)

    def _delete(self, queue, *args, **kwargs):
        self._purge(queue)

    def _get(self, queue, timeout=None):
        self._maybe_recover(queue)
        ready, inflight = self._dirs(queue)
        listing = self._listing.get(queue)
        if not listing:
            listing = self._list(queue, ready)
        pid = os.getpid()
        while listing:
            name = listing.popleft()
            claimed = f"{inflight}/{pid}-{name}"
            try:
                os.rename(f"{ready}/{name}", claimed)
            except FileNotFoundError:
                continue                      # another consumer won this one
            with open(claimed, "rb") as handle:
                payload = json.loads(handle.read())
            if name.endswith(REDELIVERED):
                payload["properties"].setdefault("delivery_info", {})["redelivered"] = True
            tag = payload["properties"]["delivery_tag"]
            self._claimed[tag] = (queue, Path(claimed))
            return payload
        raise Empty()

    def _dirs(self, queue: str) -> tuple[str, str]:
        dirs = self._paths.get(queue)
        if dirs is None:
            dirs = self._paths[queue] = (str(self.dir.ready(queue)), str(self.dir.inflight(queue)))
        return dirs

    def _list(self, queue: str, ready: str) -> deque[str]:
        """The ready folder's names, oldest first; an unchanged empty folder is not listed again.

        Directory mtimes move in coarse clock ticks, so an empty listing is
        trusted only if it was taken well after the folder's last change
        (``STABLE_NS``): any later rename then lands in a later tick and
        changes the mtime.
        """
        mtime = os.stat(ready).st_mtime_ns
        if self._empty_at.get(queue) == mtime:
            return deque()
        listed_at = time.time_ns()
        names = os.listdir(ready)
        stable = not names and listed_at - mtime > STABLE_NS
        self._empty_at[queue] = mtime if stable else None
        listing = self._listing[queue] = deque(sorted(names))
        return listing

    def _maybe_recover(self, queue: str) -> None:
        now = time.monotonic()
        if now - self._last_recover.get(queue, 0.0) >= RECOVER_EVERY:
            self._last_recover[queue] = now
            self.dir.recover_dead(queue)

    def basic_ack(self, delivery_tag, multiple=False):
        claimed = self._claimed.pop(delivery_tag, None)
        if claimed is not None:
            self.dir.recycle(claimed[1])
        super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag, requeue=False):
        claimed = self._claimed.pop(delivery_tag, None)
        if claimed is not None:
            self._unclaim(claimed, requeue)
        self.qos._quick_ack(delivery_tag)       # the file move above replaces kombu's restore

    def _restore(self, message):
        """Called for unacked messages at clean shutdown: put the claimed file back."""
        claimed = self._claimed.pop(message.delivery_tag, None)
        if claimed is not None:
            self._unclaim(claimed, requeue=True)

    def _unclaim(self, claimed: tuple[str, Path], requeue: bool) -> None:
        queue, path = claimed
        with contextlib.suppress(FileNotFoundError):
            if requeue:
                os.rename(path, self.dir.ready(queue) / path.name.partition("-")[2])
            else:
                path.unlink()


class Transport(virtual.Transport):
    """Polls the ready folders: every ``polling_interval`` when they are empty,
    every ``busy_interval`` while the prefetch window is full, so a worker whose
    threads finish tasks quickly is fed again at once instead of a poll later."""

    Channel = Channel
    polling_interval = 0.05
    busy_interval = 0.002
    driver_type = "spool"
    driver_name = "mailpipe-spool"
    implements = virtual.Transport.implements.extend(asynchronous=False, exchange_type=frozenset(["direct"]))

    def driver_version(self):
        return "1"

    def drain_events(self, connection, timeout=None, **kwargs):
        started = time.monotonic()
        cycle = self.cycle
        assert cycle is not None, "drain_events before the transport set up its cycle"
        while True:
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise socket.timeout() from None
                full = any(ch._consumers and not ch.qos.can_consume() for ch in self.channels)
                pause = self.busy_interval if full else self.polling_interval
                time.sleep(min(pause, timeout) if timeout else pause)


def register() -> None:
    """Make ``spool://`` resolve to this transport (called by the app factory, not at import)."""
    TRANSPORT_ALIASES.setdefault("spool", "mailpipe.broker.embedded_transport:Transport")
