"""``mailpipe tls selfsigned HOSTNAME [--out DIR]``: a self-signed certificate for a first start.

Writes ``<out>/<hostname>.crt`` and ``<out>/<hostname>.key`` (key mode 0600;
default ``DATA/tls/``), then prints the paths and the ``[tls]`` lines to paste
into the configuration. ECDSA P-256, valid 825 days, SAN = the hostname.

Run again for the same host, it replaces nothing: it says the pair exists, that the
same files can be used as they are, and prints the ``[tls]`` lines again.

Must not: overwrite an existing pair unless ``--force`` is given.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
from pathlib import Path

import click

from mailpipe.ops.cli import Context, pass_ctx

VALID_DAYS = 825


def selfsigned_pair(hostname: str, *, now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for `hostname`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([_san(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _san(hostname: str):
    from cryptography import x509
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]+")


class PairExists(click.ClickException):
    """The certificate or key is there already (``--force`` replaces them)."""

    def __init__(self, cert_path: Path, key_path: Path) -> None:
        super().__init__(f"{cert_path} or {key_path} exists (use --force to replace)")
        self.cert_path, self.key_path = cert_path, key_path


def write_pair(out: Path, hostname: str, *, force: bool = False) -> tuple[Path, Path]:
    if not _HOSTNAME.fullmatch(hostname):      # it becomes a file name: no "/" or ".." games
        raise click.ClickException(f"not a host name: {hostname!r}")
    cert_path, key_path = out / f"{hostname}.crt", out / f"{hostname}.key"
    if not force and (cert_path.exists() or key_path.exists()):
        raise PairExists(cert_path, key_path)
    cert_pem, key_pem = selfsigned_pair(hostname)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{out}: cannot create the directory: {exc.strerror or exc}") from None
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert_pem)
    return cert_path, key_path


@click.group()
def tls() -> None:
    """TLS certificates: a self-signed pair for a first start."""


@tls.command("selfsigned")
@click.argument("hostname")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Directory for the pair (default DATA/tls).")
@click.option("--force", is_flag=True, help="Replace an existing pair.")
@pass_ctx
def selfsigned(ctx: Context, hostname: str, out: str | None, force: bool) -> None:
    """Write a self-signed certificate and key for HOSTNAME (default in DATA/tls) and print
    the [tls] lines for the configuration. An existing pair is kept (see --force)."""
    directory = Path(out) if out else ctx.data_path() / "tls"
    try:
        cert_path, key_path = write_pair(directory.resolve(), hostname.lower(), force=force)
    except PairExists as exists:
        if not (exists.cert_path.is_file() and exists.key_path.is_file()):
            raise
        click.echo(f"certificate: {exists.cert_path} (exists, kept)\nkey:         {exists.key_path} (exists, kept)\n")
        click.echo("These files can be used as they are; --force writes a new pair.\n")
        _print_tls_lines(exists.cert_path, exists.key_path)
        return
    click.echo(f"certificate: {cert_path}\nkey:         {key_path}\n")
    _print_tls_lines(cert_path, key_path)


def _print_tls_lines(cert_path: Path, key_path: Path) -> None:
    click.echo("Add to the configuration file:\n")
    click.echo(f'[tls]\ncert = {json.dumps(str(cert_path))}\nkey = {json.dumps(str(key_path))}')


def register(cli: click.Group) -> None:
    cli.add_command(tls)
