"""Pure pieces of the spine: configuration, account directory, SMTP-time policy."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from mailpipe.core.errors import AccountError, ConfigError
from mailpipe.ingress import policy, replies
from mailpipe.core.config import load
from tests.support import fast_directory, mailpipe, need_server


def test_defaults_match_the_design_ports():
    config = load()
    assert (config.ingress.smtp_port, config.ingress.submission_port, config.ingress.smtps_port) == (2525, 2587, 2465)
    assert (config.imap.port, config.imap.tls_port, config.pop3.port, config.pop3.tls_port) == (2143, 2993, 2110, 2995)
    assert config.metrics.port == 9425 and config.ingress.listen == "127.0.0.1"
    assert config.embedded_broker and config.ingress.trusted_networks == []


@pytest.mark.parametrize("toml, key", [
    ("[ingress]\nsmtp_port = \"abc\"\n", "ingress.smtp_port = 'abc'"),
    ("[ingress]\ntrusted_networks = [\"10.0.0.300/8\"]\n", "ingress.trusted_networks"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[ingress\n", "config file"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, toml, key):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert key in str(info.value) and "\n" not in str(info.value)
    result = mailpipe("config", "check", str(path), check=False)
    assert result.returncode != 0
    assert key.encode() in result.stderr and b"Traceback" not in result.stderr


def test_env_overrides_file(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text("[ingress]\nsmtp_port = 2600\n")
    monkeypatch.setenv("MAILPIPE_INGRESS__SMTP_PORT", "2700")
    assert load(path).ingress.smtp_port == 2700


def test_directory_accounts_and_aliases(tmp_path):
    d = fast_directory(tmp_path)
    d.add_domain("Example.TEST")
    d.add_user("Alice@example.test", "s3cret")
    with pytest.raises(AccountError, match="not local"):
        d.add_user("x@foreign.test", "pw")
    with pytest.raises(AccountError, match="already exists"):
        d.add_user("alice@EXAMPLE.test", "pw")
    with pytest.raises(AccountError):
        d.add_user("../etc@example.test", "pw")
    d.add_alias("@example.test", "alice@example.test")            # catch-all
    assert d.expand("ALICE@example.test.") == ["alice@example.test"]
    assert d.expand("anything@example.test") == ["alice@example.test"]
    assert d.authenticate("alice@example.test", "s3cret") == "alice@example.test"
    assert d.authenticate("alice@example.test", "wrong") is None
    assert d.authenticate("nobody@example.test", "s3cret") is None
    d.set_password("alice@example.test", "new")
    assert d.authenticate("alice@example.test", "s3cret") is None
    assert d.owns_sender("alice@example.test", "alice@example.test")


def test_directory_on_postgresql():
    need_server(5432, "PostgreSQL")
    name = f"mptest_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    try:
        from argon2 import PasswordHasher

        from mailpipe.mailstore.directory import open_directory
        d = open_directory(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                      hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        d.add_domain("example.test")
        d.add_user("alice@example.test", "pw")
        d.add_alias("team@example.test", "alice@example.test")
        assert d.expand("team@example.test") == ["alice@example.test"]
        assert d.authenticate("alice@example.test", "pw") == "alice@example.test"
        d.close()
    finally:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"DROP DATABASE {name}"],
                       capture_output=True)


@pytest.fixture
def snap(tmp_path):
    d = fast_directory(tmp_path)
    d.add_domain("example.test")
    d.add_user("alice@example.test", "pw")
    return d


@pytest.mark.parametrize("address, relay_ok, expected", [
    ("alice@example.test", False, replies.RCPT_OK),
    ("ALICE@Example.Test.", False, replies.RCPT_OK),
    ("bob@example.test", False, "550 5.1.1"),
    ("x@foreign.test", False, "554 5.7.1"),
    ("x@foreign.test", True, replies.RCPT_OK),
    ("x%foreign.test@example.test", False, "550 5.1.1"),
    ("foreign.test!x@example.test", False, "550 5.1.1"),
    ("x@[127.0.0.1]", False, "554 5.7.1"),
    ("nodomain", False, "501 5.1.3"),
])
def test_recipient_policy(snap, address, relay_ok, expected):
    assert policy.check_recipient(address, snap, may_relay=relay_ok).startswith(expected)


def test_trusted_networks():
    nets = policy.parse_networks(["127.0.0.1/32", "2001:db8::/32"])
    assert policy.in_networks("127.0.0.1", nets) and policy.in_networks("::ffff:127.0.0.1", nets)
    assert policy.in_networks("2001:db8::5", nets)
    assert not policy.in_networks("127.0.0.2", nets) and not policy.in_networks("garbage", nets)
    assert not policy.in_networks("127.0.0.1", ())
