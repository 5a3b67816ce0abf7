"""Schema changes for account databases made by an earlier mailpipe: columns added in place.

``create_all`` makes missing tables but never alters an existing one, so each
column added to ``schema`` after the first release is listed here and added with
``ALTER TABLE ... ADD COLUMN`` (nullable, so old rows stay valid) when missing.
Idempotent, and safe when two processes start at once (the loser's "duplicate
column" error is ignored after checking the column is there).

Must not: drop or rewrite data.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

#: (table, column, SQL type) added after the first schema
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("users", "mail_host", "VARCHAR(63)"),
)


def upgrade(engine: Engine) -> list[str]:
    """Add every missing column of ``ADDED_COLUMNS``; the ``table.column`` names added."""
    added = []
    for table, column, sql_type in ADDED_COLUMNS:
        if _has_column(engine, table, column):
            continue
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
            added.append(f"{table}.{column}")
        except DBAPIError:
            if not _has_column(engine, table, column):     # not the "another process did it" race
                raise
    return added


def _has_column(engine: Engine, table: str, column: str) -> bool:
    return column in {c["name"] for c in inspect(engine).get_columns(table)}
