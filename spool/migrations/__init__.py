"""The PostgreSQL spool's schema, as Alembic migrations (``env.py``, ``versions/``).

Owns: ``upgrade(connection)``, which brings a database to the newest revision;
``spool.pg`` calls it each time it opens. Several processes may open the spool at
once (``serve`` and its workers): the upgrade runs in one transaction under a
transaction-scoped advisory lock, so one of them migrates and the others find
the work done. The revisions are tracked in ``mailpipe_spool_version`` (not
Alembic's default table), so other schemas in the same database (the accounts)
can keep their own history.

Developers add a revision with ``alembic -c <ini pointing script_location here>
revision -m "..."``; ``script.py.mako`` is its template.

Must not: touch anything but the spool's own tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, text

VERSION_TABLE = "mailpipe_spool_version"
MIGRATE_LOCK = 0x6D61696C73706F6F   #: advisory lock key ("mailspoo") serialising concurrent upgrades
HERE = Path(__file__).resolve().parent


def upgrade(connection: Connection) -> None:
    """Migrate the database of ``connection`` to the newest revision, and commit."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    with connection.begin():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
        command.upgrade(config, "head")
