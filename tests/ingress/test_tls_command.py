"""`mailpipe tls selfsigned`: the pair it writes loads as a server context and names the host."""

from __future__ import annotations

import ssl

import click
import pytest
from cryptography import x509

from mailpipe.core.tls import TlsContexts
from mailpipe.ops.commands.tls import write_pair


def test_pair_is_usable_and_private(tmp_path):
    cert, key = write_pair(tmp_path / "tls", "mail.example.test")
    assert key.stat().st_mode & 0o077 == 0
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mail.example.test"]
    context = TlsContexts(cert, key).context
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_existing_pair_needs_force(tmp_path):
    cert, _ = write_pair(tmp_path, "mx.example.test")
    before = cert.read_bytes()
    with pytest.raises(click.ClickException):
        write_pair(tmp_path, "mx.example.test")
    assert cert.read_bytes() == before
    write_pair(tmp_path, "mx.example.test", force=True)
    assert cert.read_bytes() != before


def test_ip_address_hostname(tmp_path):
    cert, _ = write_pair(tmp_path, "127.0.0.1")
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


@pytest.mark.parametrize("name", ["../evil", "a/b", "", "-x", "host name"])
def test_bad_hostnames_refused(tmp_path, name):
    with pytest.raises(click.ClickException):
        write_pair(tmp_path, name)
