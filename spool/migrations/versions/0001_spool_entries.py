"""The spool table: one row per message, queued, finished (trace kept) or set aside.

Revision ID: 0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spool_entry",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),          # the entry's state, or "aside"
        sa.Column("next_attempt", sa.Float(precision=53)),
        sa.Column("received_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("entry", sa.Text, nullable=False),          # the Entry as JSON (text: a bad one stays readable)
        sa.Column("body", sa.LargeBinary),                    # NULL once finished
    )
    op.create_index("spool_entry_due", "spool_entry", ["state", "next_attempt"])
    op.create_index("spool_entry_age", "spool_entry", ["state", "updated_at"])


def downgrade() -> None:
    op.drop_table("spool_entry")
