"""The account commands exactly as the README shows them, through the real CLI."""

from __future__ import annotations

from tests.support import mailpipe


def test_domain_user_alias_commands(tmp_path):
    data = tmp_path / "data"
    mailpipe("domain", "add", "example.test", data_dir=data)
    out = mailpipe("user", "add", "alice@example.test", "--password-stdin", data_dir=data,
                   input=b"Correct-Horse-42")
    assert out.stdout.decode().strip() == "user alice@example.test added"
    assert (data / "mail/example.test/alice/Maildir/new").is_dir()
    assert (data / "mail/example.test/alice/Maildir/.Junk/cur").is_dir()
    bad = mailpipe("user", "add", "x@foreign.test", "--password-stdin", data_dir=data, input=b"pw", check=False)
    assert bad.returncode != 0
    assert b"domain foreign.test is not local" in bad.stderr
    mailpipe("alias", "add", "postmaster@example.test", "alice@example.test", data_dir=data)
    listing = mailpipe("alias", "list", data_dir=data).stdout.decode()
    assert "postmaster@example.test -> alice@example.test" in listing
    assert mailpipe("user", "list", data_dir=data).stdout.decode().split() == ["alice@example.test"]
    db = (data / "mailpipe.db").read_bytes()
    assert b"$argon2id$" in db and b"Correct-Horse-42" not in db


def test_user_mail_host_commands(tmp_path):
    data = tmp_path / "data"
    mailpipe("domain", "add", "example.test", data_dir=data)
    out = mailpipe("user", "add", "bob@example.test", "--password-stdin", "--mail-host", "mh1", data_dir=data,
                   input=b"pw")
    assert out.stdout.decode().strip() == "user bob@example.test added on mail host mh1"
    assert not (data / "mail/example.test/bob").exists()          # its Maildir is made on mh1
    out = mailpipe("user", "move", "bob@example.test", "--mail-host", "mh2", data_dir=data)
    assert out.stdout.decode().startswith("user bob@example.test: new mail goes to mail host mh2")
    bad = mailpipe("user", "move", "bob@example.test", "--mail-host", "MH 2!", data_dir=data, check=False)
    assert bad.returncode != 0 and b"mail host" in bad.stderr and b"Traceback" not in bad.stderr
    neither = mailpipe("user", "move", "bob@example.test", data_dir=data, check=False)
    assert neither.returncode != 0 and b"--mail-host NAME or --default" in neither.stderr
    mailpipe("user", "move", "bob@example.test", "--default", data_dir=data)
