"""The data directory at start: create it (saying so), check it is usable, check the database opens.

Owns: turning a missing, unwritable or misplaced data directory and a database
file that is not a database into one line for the operator naming the path and
the problem (``StartupError``), before any command touches them.

Must not: print tracebacks, or create anything but the data directory itself.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import click

from mailpipe.core.errors import MailpipeError


class StartupError(MailpipeError):
    """A command cannot start: one line naming the path and the problem."""


def prepare(path: Path) -> Path:
    """Create `path` if missing (one line on stderr), then check it is a writable directory."""
    if not path.exists():
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            pass                                   # another command created it just now
        except OSError as exc:
            raise StartupError(f"data directory {path}: cannot create it: {_reason(exc)}") from None
        else:
            click.echo(f"mailpipe: created data directory {path.resolve()}", err=True)
    if not path.is_dir():
        raise StartupError(f"data directory {path}: exists but is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"data directory {path}: not writable by this user (uid {os.geteuid()})")
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def check_database(url: str) -> None:
    """Open the account database once; a corrupt or unreadable file is a ``StartupError``."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM sqlite_master" if url.startswith("sqlite")
                              else "SELECT 1"))
    except SQLAlchemyError as exc:
        raise StartupError(f"database {describe_url(url)}: {one_line(exc)}") from None
    finally:
        engine.dispose()


def describe_url(url: str) -> str:
    """The database file of a SQLite URL, else the URL without its password."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):]
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)


def one_line(exc: BaseException) -> str:
    """The first line of what the driver said (SQLAlchemy appends SQL and a link on more lines)."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
