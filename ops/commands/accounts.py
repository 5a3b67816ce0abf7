"""``mailpipe domain|user|alias ...``: account management. Passwords come from stdin or a prompt, never argv."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from mailpipe.core.errors import AccountError
from mailpipe.ops.cli import Context, pass_ctx


def _fail(exc: AccountError) -> NoReturn:
    raise click.ClickException(str(exc))


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        data = sys.stdin.read()
        return data[:-1] if data.endswith("\n") else data
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group()
def domain() -> None:
    """Local domains."""


@domain.command("add")
@click.argument("name")
@pass_ctx
def domain_add(ctx: Context, name: str) -> None:
    """Add a local domain (mail to it is delivered here)."""
    try:
        ctx.directory().add_domain(name)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"domain {name.lower()} added")


@domain.command("list")
@pass_ctx
def domain_list(ctx: Context) -> None:
    """List the local domains."""
    for name in ctx.directory().domains():
        click.echo(name)


@domain.command("del")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def domain_del(ctx: Context, name: str, yes: bool) -> None:
    """Delete a local domain with its users and aliases; their Maildirs stay on disk."""
    directory = ctx.directory()
    try:
        contents = directory.domain_contents(name)
    except AccountError as exc:
        _fail(exc)
    kept = _mailboxes_on_disk(ctx, contents.users)
    if contents.users or contents.aliases:
        click.echo(f"domain {contents.domain}: {len(contents.users)} users ({len(kept)} mailboxes on disk) "
                   f"and {contents.aliases} aliases will be removed from the directory; the mailboxes "
                   f"stay on disk under {ctx.config.data_dir / 'mail' / contents.domain}")
        if not yes:
            click.confirm(f"Delete domain {contents.domain}?", abort=True)
    try:
        removed = directory.remove_domain(name)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"domain {removed.domain} deleted with {len(removed.users)} users and {removed.aliases} aliases "
               f"({len(kept)} mailboxes kept on disk)")


def _mailboxes_on_disk(ctx: Context, users: tuple[str, ...]) -> list[str]:
    from mailpipe.mailstore.maildir import maildir_path
    return [u for u in users if maildir_path(ctx.config.data_dir, u).is_dir()]


@click.group()
def user() -> None:
    """Mail users (their Maildir is created on first delivery)."""


@user.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--mail-host", default=None, help="The mail host that holds its mail (default: the default one).")
@pass_ctx
def user_add(ctx: Context, address: str, password_stdin: bool, mail_host: str | None) -> None:
    """Add a user in a local domain and create its Maildir (here, if this is its mail host)."""
    try:
        canonical = ctx.directory().add_user(address, _read_password(password_stdin), mail_host=mail_host)
    except AccountError as exc:
        _fail(exc)
    from mailpipe.mailstore.maildir import ensure_maildir, maildir_path
    if (mail_host or None) == ctx.config.cluster.mail_host:      # another host's Maildir is made there
        ensure_maildir(maildir_path(ctx.config.data_dir, canonical))
    click.echo(f"user {canonical} added" + (f" on mail host {mail_host}" if mail_host else ""))


@user.command("move")
@click.argument("address")
@click.option("--mail-host", default=None, help="The mail host that holds its new mail.")
@click.option("--default", "to_default", is_flag=True, help="Back to the default mail host (queue `local`).")
@pass_ctx
def user_move(ctx: Context, address: str, mail_host: str | None, to_default: bool) -> None:
    """Send a user's new mail to another mail host; mail already stored is not moved."""
    if bool(mail_host) == to_default:
        raise click.UsageError("give exactly one of --mail-host NAME or --default")
    try:
        ctx.directory().set_mail_host(address, None if to_default else mail_host)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"user {address}: new mail goes to mail host {mail_host or 'default'} (within 2 s)")


@user.command("list")
@click.option("--domain", default=None, help="Only the users of this domain.")
@pass_ctx
def user_list(ctx: Context, domain: str | None) -> None:
    """List users (of one domain with --domain)."""
    for address in ctx.directory().users(domain):
        click.echo(address)


@user.command("del")
@click.argument("address")
@pass_ctx
def user_del(ctx: Context, address: str) -> None:
    """Delete a user; running servers refuse it within 2 s. Its Maildir stays on disk."""
    try:
        ctx.directory().remove_user(address)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"user {address} deleted (the Maildir on disk is kept)")


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def user_passwd(ctx: Context, address: str, password_stdin: bool) -> None:
    """Change a user's password; running servers refuse the old one within 2 s."""
    try:
        ctx.directory().set_password(address, _read_password(password_stdin))
    except AccountError as exc:
        _fail(exc)
    click.echo(f"password of {address} changed")


@click.group()
def alias() -> None:
    """Aliases: SOURCE delivers to TARGET (SOURCE may be @domain for a catch-all)."""


@alias.command("add")
@click.argument("source")
@click.argument("target")
@pass_ctx
def alias_add(ctx: Context, source: str, target: str) -> None:
    """Deliver mail for SOURCE (an address, or @domain for a catch-all) to TARGET."""
    try:
        ctx.directory().add_alias(source, target)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"alias {source} -> {target} added")


@alias.command("list")
@pass_ctx
def alias_list(ctx: Context) -> None:
    """List aliases as SOURCE -> TARGET."""
    for source, target in ctx.directory().aliases():
        click.echo(f"{source} -> {target}")


@alias.command("del")
@click.argument("source")
@click.argument("target")
@pass_ctx
def alias_del(ctx: Context, source: str, target: str) -> None:
    """Delete one alias SOURCE -> TARGET."""
    try:
        ctx.directory().remove_alias(source, target)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"alias {source} -> {target} deleted")


def register(cli: click.Group) -> None:
    for group in (domain, user, alias):
        cli.add_command(group)
