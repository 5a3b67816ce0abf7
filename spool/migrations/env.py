"""Alembic's entry point for the spool schema: runs on the connection ``upgrade`` hands in.

Must not: open its own connection or read alembic.ini (there is none in the package).
"""

from __future__ import annotations

from alembic import context

from mailpipe.spool.migrations import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
