"""``mailpipe config check FILE`` and ``mailpipe config show``."""

from __future__ import annotations

import json

import click

from mailpipe.core.errors import ConfigError
from mailpipe.ops.cli import Context, pass_ctx
from mailpipe.core.config import load


@click.group("config")
def config_group() -> None:
    """Validate or show the configuration."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate FILE; exit 0 if valid, else print one line naming the key and exit 2."""
    try:
        load(file)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: ok")


@config_group.command("show")
@pass_ctx
def config_show(ctx: Context) -> None:
    """Print the effective configuration (file + environment + defaults) as JSON."""
    click.echo(json.dumps(json.loads(ctx.config.model_dump_json()), indent=2, sort_keys=True))


def register(cli: click.Group) -> None:
    cli.add_command(config_group)
