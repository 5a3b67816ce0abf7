"""The account directory's SQL schema (SQLAlchemy): domains, users, aliases, and the change generation.

``directory_generation`` holds one row whose ``value`` every change (add, delete,
password, alias, domain) increments in the same transaction as the change
itself; each process compares it at most once a second and clears its caches
when it moved (``sql.SqlDirectory``).

Must not: hold queries or logic.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

GENERATION_ROW = 1


class Base(DeclarativeBase):
    pass


class Domain(Base):
    __tablename__ = "domains"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)


class User(Base):
    __tablename__ = "users"
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    domain: Mapped[str] = mapped_column(ForeignKey("domains.name", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    quota_bytes: Mapped[int] = mapped_column(default=0)
    mail_host: Mapped[str | None] = mapped_column(String(63), nullable=True, default=None)  #: None: the default mail host (``upgrade.py`` adds it to older databases)


class Alias(Base):
    __tablename__ = "aliases"
    source: Mapped[str] = mapped_column(String(320), primary_key=True)
    target: Mapped[str] = mapped_column(String(320), primary_key=True)


class Generation(Base):
    __tablename__ = "directory_generation"
    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
