"""The ``mailpipe`` command line (click). Subcommands live in ``ops/commands/``.

Every command takes ``--config FILE`` (or ``MAILPIPE_CONFIG``) and
``--data-dir DIR`` (or ``MAILPIPE_DATA_DIR``); with neither, defaults apply.
A bad configuration stops the command with one line and exit status 2.
"""

from __future__ import annotations

import contextlib
import sys

import click

from mailpipe.core.errors import ConfigError, MailpipeError
from mailpipe.core.config import Config, load
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
                raise click.ClickException(str(exc)) from None
        return self._config

    def directory(self):
        from mailpipe.mailstore.directory import Directory
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        return Directory(self.config.db_url)

    def spool(self) -> Spool:
        from mailpipe.spool import open_spool
        try:
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
    _register()
    try:
        cli(standalone_mode=True)
    except MailpipeError as exc:
        click.echo(f"mailpipe: {exc}", err=True)
        sys.exit(1)

