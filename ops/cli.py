"""The ``mailpipe`` command line (click). Subcommands live in ``ops/commands/``.

Every command takes ``--config FILE`` (or ``MAILPIPE_CONFIG``) and
``--data-dir DIR`` (or ``MAILPIPE_DATA_DIR``); with neither, defaults apply.
A bad configuration stops the command with one line and exit status 2; a data
directory or database that cannot be used, with one line naming the path and
exit status 1 (``ops/datadir.py``). Operators never see a traceback for these.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

import click

from mailpipe import __version__
from mailpipe.core.errors import ConfigError, MailpipeError
from mailpipe.core.config import Config, load
from mailpipe.ops import datadir


class BadConfig(click.ClickException):
    """A configuration that does not validate: one line, exit status 2."""

    exit_code = 2

if TYPE_CHECKING:
    from mailpipe.mailstore.directory import AccountAdmin
from mailpipe.spool.interface import Spool


class Context:
    def __init__(self, config_path: str | None, data_dir: str | None) -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            overrides = {"data_dir": self.data_dir} if self.data_dir else {}
            try:
                self._config = load(self.config_path, **overrides)
            except ConfigError as exc:
                raise BadConfig(str(exc)) from None
        return self._config

    def data_path(self):
        """The data directory, created (and said so) if missing; a ``StartupError`` if unusable."""
        return datadir.prepare(self.config.data_dir)

    def directory(self) -> "AccountAdmin":
        from mailpipe.mailstore.directory import open_directory
        self.data_path()
        datadir.check_database(self.config.db_url)
        return open_directory(self.config.db_url)

    def spool(self) -> Spool:
        from mailpipe.spool import open_spool
        try:
            self.data_path()
            return open_spool(self.config)
        except OSError as exc:
            raise click.ClickException(f"spool in {self.config.data_dir}: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def locked(self, queue_id: str):
        """The spool, with this message locked against workers; a clear error if one has it now."""
        spool = self.spool()
        with spool.lock(queue_id) as owned:
            if not owned:
                raise click.ClickException(f"{queue_id}: busy in a worker right now; try again")
            yield spool


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mailpipe", message="%(prog)s %(version)s")
@click.option("--config", "config_path", envvar="MAILPIPE_CONFIG", type=click.Path(dir_okay=False),
              help="TOML configuration file (default: built-in defaults).")
@click.option("--data-dir", envvar="MAILPIPE_DATA_DIR", type=click.Path(file_okay=False),
              help="Data directory (default ./mailpipe-data).")
@click.pass_context
def cli(click_ctx: click.Context, config_path: str | None, data_dir: str | None) -> None:
    """mailpipe: a mail server built as a pipeline of queue workers with filters."""
    click_ctx.obj = Context(config_path, data_dir)


def _register() -> None:
    from mailpipe.ops.commands import accounts, config_cmd, filters, ops_tools, queue, roles, tls
    for module in (accounts, config_cmd, queue, roles, filters, ops_tools, tls):
        module.register(cli)


def main() -> None:
    from mailpipe.ops import process
    process.watch_parent()              # a child of `serve`: die with it
    _register()
    try:
        cli(standalone_mode=True)
    except MailpipeError as exc:
        _fail(str(exc))
    except OSError as exc:                  # a file mailpipe needs: name it, no traceback
        _fail(f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc.strerror or exc))
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError
        if not isinstance(exc, SQLAlchemyError):
            raise
        _fail(f"database: {datadir.one_line(exc)}")


def _fail(line: str) -> None:
    click.echo(f"mailpipe: {line}", err=True)
    sys.exit(1)

