"""The CLI a new user meets (issue 17 items 12, 14, 15), through the installed console script.

Every start-up failure is one line naming the path and the problem (exit 1), a bad
configuration one line (exit 2); a new data directory is announced; ``--version``,
help for every subcommand, ``config show`` that ``config check`` accepts, and a second
``tls selfsigned`` that keeps the pair and prints the ``[tls]`` lines again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

SCRIPT = shutil.which("mailpipe", path=str(Path(sys.executable).parent)) or shutil.which("mailpipe")


def run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert SCRIPT, "the mailpipe console script is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_version():
    from mailpipe import __version__
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"mailpipe {__version__}"


@pytest.mark.parametrize("command", [["domain", "add", "x.test"], ["queue", "status"], ["user", "list"],
                                     ["tls", "selfsigned", "mx.x.test"], ["serve"]])
def test_missing_data_directory_that_cannot_be_created_is_one_line(command):
    one_line_error(run("--data-dir", "/proc/nope", *command), "/proc/nope")


@pytest.mark.parametrize("command", [["domain", "add", "x.test"], ["queue", "status"], ["serve"]])
def test_data_directory_that_is_a_file_is_one_line(tmp_path, command):
    blocker = tmp_path / "data"
    blocker.write_text("not a directory\n")
    # the click option refuses an existing file itself; a file on the path below it gets through
    one_line_error(run("--data-dir", str(blocker / "sub"), *command), str(blocker / "sub"))


def test_a_new_data_directory_is_announced_once(tmp_path):
    first = run("domain", "add", "x.test", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"created data directory {tmp_path / 'mailpipe-data'}" in first.stderr
    second = run("domain", "list", cwd=tmp_path)
    assert second.returncode == 0 and "created" not in second.stderr and second.stdout.strip() == "x.test"


def _corrupt_database(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    assert run("--data-dir", str(data), "domain", "add", "x.test").returncode == 0
    db = data / "mailpipe.db"
    with open(db, "r+b") as handle:           # the 16-byte SQLite header magic
        handle.write(b"garbage garbage!")
    return data


@pytest.mark.parametrize("command", [["serve"], ["domain", "list"], ["imap"]])
def test_corrupt_database_header_is_one_line_naming_the_file(tmp_path, command):
    data = _corrupt_database(tmp_path)
    line = one_line_error(run("--data-dir", str(data), *command), str(data / "mailpipe.db"))
    assert "not a database" in line


def test_bad_config_is_exit_2_as_its_help_says(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[ingress]\nsmtp_port = "x"\n')
    result = run("config", "check", str(bad))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "exit 2" in " ".join(run("config", "check", "--help").stdout.split())


def test_config_show_is_toml_that_config_check_accepts(tmp_path):
    shown = run("config", "show")
    assert shown.returncode == 0, shown.stderr
    path = tmp_path / "c.toml"
    path.write_text(shown.stdout)
    checked = run("config", "check", str(path))
    assert checked.returncode == 0, checked.stderr
    as_json = json.loads(run("config", "show", "--json").stdout)
    from mailpipe.core.config import load
    assert load(path).model_dump(mode="json") == as_json


def test_config_show_round_trips_unusual_values(tmp_path):
    source = tmp_path / "in.toml"
    source.write_text('hostname = "mx \\"quoted\\".test"\n[relay]\nstatic_routes = {"a.test" = "h:25", "*" = "s:587"}\n'
                      'delay_warning = 3600.5\n[ingress]\ntrusted_networks = ["10.0.0.0/8"]\n')
    shown = run("--config", str(source), "config", "show")
    out = tmp_path / "out.toml"
    out.write_text(shown.stdout)
    from mailpipe.core.config import load
    assert load(out).model_dump(mode="json") == load(source).model_dump(mode="json")


def test_tls_selfsigned_a_second_time_keeps_the_pair_and_prints_the_lines(tmp_path):
    data = tmp_path / "data"
    first = run("--data-dir", str(data), "tls", "selfsigned", "mx.x.test")
    assert first.returncode == 0, first.stderr
    cert = data / "tls" / "mx.x.test.crt"
    before = cert.read_bytes()
    second = run("--data-dir", str(data), "tls", "selfsigned", "mx.x.test")
    assert second.returncode == 0, second.stderr
    assert "exists" in second.stdout and "--force" in second.stdout
    assert f'[tls]\ncert = "{cert}"\nkey = "{data / "tls" / "mx.x.test.key"}"' in second.stdout
    assert cert.read_bytes() == before


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def test_every_subcommand_has_help():
    from mailpipe.ops import cli
    cli._register()
    commands = list(_commands(cli.cli))
    assert len(commands) > 20
    missing = [" ".join(path) for path, command in commands if not (command.help or "").strip()]
    assert missing == []
    runner = CliRunner()
    for path, _ in commands:                      # and --help shows it (in-process: 40 commands)
        result = runner.invoke(cli.cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert _description(result.output), (path, result.output)
    for path in (("quarantine", "list"), ("domain", "add"), ("user", "passwd")):   # the real script
        result = run(*path, "--help")
        assert result.returncode == 0 and _description(result.stdout), (path, result.stdout)


def _description(help_text: str) -> str:
    parts = help_text.split("\n\n")
    return "" if len(parts) < 2 or parts[1].strip().startswith("Options:") else parts[1].strip()
