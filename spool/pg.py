"""PostgreSQL spool backend: the spool shared by every host that reaches one database.

Selected by ``spool_url = "postgresql+psycopg://user@host/db"`` (``spool.open_spool``).
One table, ``spool_entry`` (schema in ``spool/migrations``, brought up to date by
Alembic each time a spool opens): per message its queue ID, the entry as JSON
(envelope, state, stage, per-recipient status, trace), the raw message, and the
columns the queries need (``state``, ``next_attempt``, ``received_at``,
``updated_at``, ``sender``), indexed by ``(state, next_attempt)`` for ``due`` and
``(state, updated_at)`` for ``stale`` and ``purge_done``.

How each guarantee of ``spool.interface`` holds here:

- ``create``/``create_many``: one INSERT transaction per call (the ingress's
  group commit is one transaction per batch), committed (``synchronous_commit``
  as the server has it, ``on`` by default) before it returns. A database that
  cannot be written gives ``SpoolFull`` for every message of the batch (452):
  nothing of it is stored.
- ``claim``/``lock``: ``pg_try_advisory_lock`` on a key derived from the queue
  ID, taken on a connection kept out of the pool for the claim's whole life.
  It is the session's lock: it ends with the connection, so a process or host
  that dies (its TCP connection closed or timed out by the server) releases
  it; nothing expires while a slow holder still works. Needs a session-level
  connection to the server (not a transaction-pooling pgbouncer). That
  connection runs in autocommit (one round trip per statement), and the
  claiming thread's ``load``/``message``/``save`` of that message run on it: a
  save after the lock was lost (the server restarted) fails instead of writing
  behind a new owner's back.
- ``save``: one UPDATE (atomic); ``durable=False`` commits with
  ``synchronous_commit = off`` (the entry may be lost in a server crash, never
  torn). Saving a ``done`` entry sets the state and drops the body in that same
  UPDATE, so the message leaves the queue exactly once; a claim reads the row
  after its lock and finds a finished one gone. That UPDATE, like the
  filesystem spool's unsynced finish, does not wait for the WAL flush: a server
  crash right after it may bring the message back as active (the sweeper runs
  it again and local delivery, keyed by queue ID, finds its copy), never lose
  it. Delivery itself is durable before the finish.
- ``listing``: a server-side cursor (``yield_per``) with the state, sender and
  age filters in SQL, the rest checked on each parsed row. A row whose entry
  does not parse is listed as ``corrupt`` with its reason.
- ``move_aside`` marks the row ``aside``: out of the queue, kept for inspection.

Errors: an unknown ID raises FileNotFoundError, an unreadable entry
``CorruptEntry``; a database unreachable when the spool opens raises
``SpoolUnavailable`` naming the URL without its password (``mailpipe`` prints
it as one line).

Must not: know about stages, brokers or protocols.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, Row, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from mailpipe.core.errors import SpoolFull, TransientError
from mailpipe.core.ids import is_queue_id
from mailpipe.spool.fs import corrupt_reason
from mailpipe.spool.migrations import upgrade
from mailpipe.spool.interface import ALL, CORRUPT, Claimed, CorruptEntry, Listed, Query, listed
from mailpipe.spool.model import Entry, State

log = logging.getLogger("mailpipe.spool")

STREAM_ROWS = 500                 #: rows a listing fetches from the server at once
POOL_SIZE = 5                     #: pooled connections kept open per process
POOL_OVERFLOW = 30                #: more opened when busy (each claim holds one for its life)
CONNECT_TIMEOUT = 10              #: seconds to reach the server

SYNC_OFF = "mailpipe_sync_off"    #: connection info key: this session commits without waiting for the WAL flush

COLUMNS = "id, state, next_attempt, received_at, updated_at, sender, entry, body"
INSERT = text(f"INSERT INTO spool_entry ({COLUMNS}) VALUES "
              "(:id, :state, :next_attempt, :received_at, :updated_at, :sender, :entry, :body)")
UPDATE = text("UPDATE spool_entry SET state = :state, next_attempt = :next_attempt, updated_at = :updated_at, "
              "sender = :sender, entry = :entry, body = CASE WHEN :state = 'done' THEN NULL ELSE body END "
              "WHERE id = :id AND state <> 'aside'")
LOAD = text("SELECT entry, state FROM spool_entry WHERE id = :id AND state <> 'aside'")
DUE = text("SELECT id FROM spool_entry WHERE state = 'deferred' AND next_attempt <= :now "
           "ORDER BY next_attempt, id LIMIT :limit")
BODY = text("SELECT body FROM spool_entry WHERE id = :id AND state NOT IN ('done', 'aside')")
UNLOCK = text("SELECT pg_advisory_unlock(:key)")
UNLOCK_RESET = text("SELECT pg_advisory_unlock(:key), set_config(name, reset_val, false) "   # and RESET, at once
                    "FROM pg_settings WHERE name = 'synchronous_commit'")
CLAIM = text("SELECT entry, body FROM spool_entry WHERE id = :id AND state NOT IN ('done', 'aside')")


class SpoolUnavailable(TransientError):
    """The spool database cannot be reached or used; the text names it without its password."""


class PostgresSpool:
    def __init__(self, url: str | URL) -> None:
        self.url = make_url(url)
        if self.url.drivername == "postgresql":       # SQLAlchemy's default driver is psycopg2: use psycopg 3
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.name = self.url.render_as_string(hide_password=True)
        self.engine = self._engine()
        self._pid = os.getpid()
        self._held: dict[str, tuple[int, Connection]] = {}   #: queue ID -> (thread, its claim's connection)
        try:
            with self.engine.connect() as conn:
                upgrade(conn)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise SpoolUnavailable(f"spool database {self.name}: {_one_line(exc)}") from None

    def _engine(self) -> Engine:
        return create_engine(self.url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=True,
                             connect_args={"connect_timeout": CONNECT_TIMEOUT})

    def _db(self) -> Engine:
        """This process's engine: a forked child never shares its parent's connections."""
        if self._pid != os.getpid():
            self.engine.dispose(close=False)
            self._pid, self._held = os.getpid(), {}
        return self.engine

    def _holding(self, queue_id: str) -> Connection | None:
        """The connection of this thread's claim on ``queue_id``, if it holds one."""
        held = self._held.get(queue_id)
        return held[1] if held is not None and held[0] == threading.get_ident() else None

    def close(self) -> None:
        self.engine.dispose()

    # -- writing ---------------------------------------------------------
    def create(self, entry: Entry, chunks: list[bytes]) -> None:
        """Store a new message, committed before this returns; SpoolFull if the database refuses."""
        error = self.create_many([(entry, chunks)])[0]
        if error is not None:
            raise error

    def create_many(self, messages: list[tuple[Entry, list[bytes]]]) -> list[SpoolFull | None]:
        """``create`` for messages accepted together: one transaction for all of them."""
        now = time.time()
        rows = []
        for entry, chunks in messages:
            _check_id(entry.id)
            entry.updated_at = entry.updated_at or now     # else the sweeper finds it stale at once
            rows.append({**_columns(entry), "received_at": entry.received_at, "body": b"".join(chunks)})
        try:
            with self._db().begin() as conn:
                conn.execute(INSERT, rows)
        except SQLAlchemyError as exc:
            log.error("spool database %s: storing %d messages failed: %s", self.name, len(rows), _one_line(exc))
            full = SpoolFull(f"spool database {self.name}: {_one_line(exc)}")
            return [full for _ in messages]
        for entry, _ in messages:
            entry._stored_state = entry.state
        return [None for _ in messages]

    def save(self, entry: Entry, *, durable: bool = True) -> None:
        """Replace the entry in one UPDATE; a finished one commits without waiting for the WAL flush
        (see the module docstring)."""
        entry.updated_at = time.time()
        durable = durable and entry.state != State.DONE
        held = self._holding(entry.id)
        if held is not None:
            _synchronous(held, durable)
            updated = held.execute(UPDATE, _columns(entry)).rowcount
        else:
            with self._db().begin() as conn:
                if not durable:
                    conn.execute(text("SET LOCAL synchronous_commit = off"))
                updated = conn.execute(UPDATE, _columns(entry)).rowcount
        if updated == 0:
            log.warning("%s: saved, but it is no longer in the spool (deleted or set aside)", entry.id)
        entry._stored_state = entry.state

    def delete(self, queue_id: str) -> None:
        _check_id(queue_id)
        with self._db().begin() as conn:
            conn.execute(text("DELETE FROM spool_entry WHERE id = :id"), {"id": queue_id})

    def move_aside(self, queue_id: str) -> str:
        """Set a queued entry (readable or not) aside; where it is now. FileNotFoundError if it
        is not queued; BlockingIOError if a worker holds it."""
        _check_id(queue_id)
        with self._locked(queue_id) as conn:
            if conn is None:
                raise BlockingIOError(errno.EAGAIN, f"{queue_id}: busy in a worker")
            moved = conn.execute(text("UPDATE spool_entry SET state = 'aside' WHERE id = :id "
                                      "AND state NOT IN ('done', 'aside')"), {"id": queue_id}).rowcount
        if not moved:
            raise FileNotFoundError(errno.ENOENT, f"{queue_id}: not in the queue")
        return f"{self.name} spool_entry {queue_id} (state aside)"

    # -- reading ---------------------------------------------------------
    def load(self, queue_id: str) -> Entry:
        """The entry (queued or done); FileNotFoundError if the ID is unknown, CorruptEntry if unreadable."""
        _check_id(queue_id)
        held = self._holding(queue_id)
        if held is not None:
            row = held.execute(LOAD, {"id": queue_id}).first()
        else:
            with self._db().connect() as conn:
                row = conn.execute(LOAD, {"id": queue_id}).first()
        if row is None:
            raise FileNotFoundError(errno.ENOENT, f"{queue_id}: not in the spool")
        return _parse(queue_id, row.entry)

    def message(self, queue_id: str) -> bytes:
        _check_id(queue_id)
        held = self._holding(queue_id)
        with contextlib.ExitStack() as stack:
            conn = held if held is not None else stack.enter_context(self._db().connect())
            body = conn.execute(BODY, {"id": queue_id}).scalar()
        if body is None:
            raise FileNotFoundError(errno.ENOENT, f"{queue_id}: not in the queue")
        return bytes(body)

    def ids(self) -> list[str]:
        """Queue IDs of every message not yet done, oldest first."""
        with self._db().connect() as conn:
            return list(conn.execute(text("SELECT id FROM spool_entry WHERE state NOT IN ('done', 'aside') "
                                          "ORDER BY id")).scalars())

    def entries(self) -> Iterator[Entry]:
        """Every readable queued entry (corrupt ones are in ``listing``)."""
        for row in self._stream("SELECT id, entry FROM spool_entry WHERE state NOT IN ('done', 'aside') ORDER BY id"):
            with contextlib.suppress(CorruptEntry):
                yield _parse(row.id, row.entry)

    def listing(self, query: Query = ALL) -> Iterator[Listed]:
        """Rows of the queued entries matching ``query``, by queue ID, streamed from a server-side cursor."""
        where, params = _where(query)
        sql = ("SELECT id, entry, updated_at, octet_length(entry) + coalesce(octet_length(body), 0) AS bytes "
               f"FROM spool_entry WHERE {where} ORDER BY id")
        for row in self._stream(sql, params):
            try:
                found = listed(_parse(row.id, row.entry), row.bytes)
            except CorruptEntry as exc:
                found = Listed(row.id, CORRUPT, last_error=exc.reason, updated_at=row.updated_at, bytes=row.bytes)
            if query is ALL or query.matches(found):
                yield found

    def _stream(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[Row[Any]]:
        with self._db().connect() as conn:
            result = conn.execution_options(yield_per=STREAM_ROWS).execute(text(sql), params or {})
            yield from result

    def due(self, now: float, limit: int = 1000) -> list[str]:
        """Queue IDs of deferred entries whose next attempt has come, earliest first (index ``spool_entry_due``)."""
        with self._db().connect() as conn:
            return list(conn.execute(DUE, {"now": now, "limit": limit}).scalars())

    def stale(self, updated_before: float) -> Iterator[str]:
        """Queue IDs of active entries last saved before ``updated_before`` (index ``spool_entry_age``)."""
        yield from (row.id for row in self._stream(
            "SELECT id FROM spool_entry WHERE state = 'active' AND updated_at < :before ORDER BY updated_at",
            {"before": updated_before}))

    def reconcile(self) -> int:
        """Nothing to bring in line: the indexes are the database's own. Checks nothing; 0."""
        return 0

    def usage_bytes(self) -> int:
        """What the spool's table (with its indexes and TOAST data) occupies on the server."""
        with self._db().connect() as conn:
            return int(conn.execute(text("SELECT pg_total_relation_size('spool_entry')")).scalar() or 0)

    def purge_done(self, older_than: float) -> int:
        with self._db().begin() as conn:
            return conn.execute(text("DELETE FROM spool_entry WHERE state = 'done' AND updated_at < :before"),
                                {"before": older_than}).rowcount

    def purge_orphans(self, older_than: float) -> int:
        """A transaction leaves no half-created entry behind: nothing to tidy."""
        return 0

    # -- locking ---------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, queue_id: str) -> Iterator[bool]:
        """Yield True if this process now owns the message, False if another does."""
        with self._locked(queue_id) as conn:
            yield conn is not None

    @contextlib.contextmanager
    def claim(self, queue_id: str) -> Iterator[Claimed | None]:
        """``lock`` and read the message: its entry and raw content, or None if another process
        owns it or it has left the queue (finished, deleted, set aside) in the meantime."""
        with self._locked(queue_id) as conn:
            if conn is None:
                yield None
                return
            row = conn.execute(CLAIM, {"id": queue_id}).first()      # read after the lock: never a stale row
            yield None if row is None else Claimed(_parse(queue_id, row.entry), bytes(row.body))

    @contextlib.contextmanager
    def _locked(self, queue_id: str) -> Iterator[Connection | None]:
        """A connection (autocommit) holding the message's advisory lock for the block's life; None if
        another has it. This thread's load, message and save of the message run on it meanwhile."""
        _check_id(queue_id)
        key = {"key": lock_key(queue_id)}
        conn = self._db().connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
                yield None
                return
            self._held[queue_id] = (threading.get_ident(), conn)
            try:
                yield conn
            finally:
                self._held.pop(queue_id, None)
                _unlock(conn, key)
        finally:
            conn.close()


def _unlock(conn: Connection, key: dict[str, int]) -> None:
    """Release the advisory lock (and the session's commit setting); a connection that cannot is
    dropped (its lock dies with it)."""
    try:
        conn.execute(UNLOCK_RESET if conn.info.pop(SYNC_OFF, False) else UNLOCK, key)
    except SQLAlchemyError:
        conn.invalidate()


def _synchronous(conn: Connection, durable: bool) -> None:
    """Set a claim connection's ``synchronous_commit`` for the next save (a round trip only on a change)."""
    if conn.info.get(SYNC_OFF, False) == (not durable):
        return
    conn.execute(text("RESET synchronous_commit" if durable else "SET synchronous_commit = off"))
    conn.info[SYNC_OFF] = not durable


def lock_key(queue_id: str) -> int:
    """The advisory lock key of a queue ID: 64 bits of its hash (a collision only makes a claim wait)."""
    return int.from_bytes(hashlib.blake2b(queue_id.encode(), digest_size=8).digest(), "big", signed=True)


def _parse(queue_id: str, data: str) -> Entry:
    try:
        entry = Entry.model_validate_json(data)
    except ValueError as exc:
        raise CorruptEntry(queue_id, corrupt_reason(exc)) from None
    entry._stored_state = entry.state
    return entry


def _columns(entry: Entry) -> dict[str, Any]:
    return {"id": entry.id, "state": entry.state.value, "next_attempt": entry.next_attempt,
            "updated_at": entry.updated_at, "sender": entry.sender, "entry": entry.model_dump_json()}


def _where(query: Query) -> tuple[str, dict[str, Any]]:
    """The SQL part of a listing's filters; every row it lets through is checked in full afterwards.
    The state filter stays out of SQL when it asks for ``corrupt`` (known only once parsed)."""
    clauses, params = ["state NOT IN ('done', 'aside')"], dict[str, Any]()
    if query.states is not None and CORRUPT not in query.states:
        clauses.append("state = ANY(:states)")
        params["states"] = sorted(query.states)
    if query.received_before is not None:
        clauses.append("received_at < :before")
        params["before"] = query.received_before
    if query.sender is not None:
        clauses.append("lower(sender) = lower(:sender)")
        params["sender"] = query.sender
    return " AND ".join(clauses), params


def _one_line(exc: SQLAlchemyError) -> str:
    """The driver's first line of an error (never the URL's password: the driver does not echo it)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_id(queue_id: str) -> None:
    if not is_queue_id(queue_id):
        raise ValueError(f"not a queue ID: {queue_id!r}")


__all__ = ["PostgresSpool", "SpoolUnavailable", "lock_key"]
