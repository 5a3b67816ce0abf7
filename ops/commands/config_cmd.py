"""``mailpipe config check FILE`` and ``mailpipe config show [--json]``.

``config show`` prints the effective configuration as TOML that can be saved as a
configuration file and passes ``config check`` (keys left unset, such as
``[antivirus] clamd``, appear as comments: TOML has no "none").
"""

from __future__ import annotations

import json
import math
from typing import Any

import click

from mailpipe.core.errors import ConfigError
from mailpipe.ops.cli import BadConfig, Context, pass_ctx
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
        raise BadConfig(str(exc)) from None
    click.echo(f"{file}: ok")


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@pass_ctx
def config_show(ctx: Context, as_json: bool) -> None:
    """Print the effective configuration (file + environment + defaults) as TOML."""
    data = ctx.config.model_dump(mode="json")
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    click.echo("\n".join(to_toml(data)))


def to_toml(data: dict[str, Any]) -> list[str]:
    """Top-level keys, then one ``[section]`` per nested model."""
    lines = [_pair(key, value) for key, value in data.items() if not isinstance(value, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines += ["", f"[{section}]", *(_pair(key, value) for key, value in values.items())]
    return lines


def _pair(key: str, value: Any) -> str:
    if value is None:
        return f"# {key} =            (not set)"
    return f"{_key(key)} = {_value(value)}"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)            # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def register(cli: click.Group) -> None:
    cli.add_command(config_group)
