"""Filters wired into the pipeline: a real `mailpipe serve` with real clamd, spamd and a rules file."""

from __future__ import annotations

import base64
import io
import json
import signal
import smtplib
import unicodedata
import uuid
import zipfile

import pytest

from tools import avspam
from tests.support import ServeProcess, add_accounts, wait_for

pytestmark = pytest.mark.slow

EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
MARKER = b"MAILSRV-TEST-MALWARE-MARKER-7f3a9c"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
RULES = """
[[rule]]
name = "promo-vi"
action = "junk"
[rule.when]
body_keyword = "khuyến mãi"

[[rule]]
name = "hold-audit"
action = "hold"
[rule.when]
header = { name = "Subject", regex = "^AUDIT" }
"""


def mime(subject: str, text: bytes, attachment: tuple[str, bytes] | None = None, charset: str = "utf-8") -> bytes:
    boundary = uuid.uuid4().hex
    parts = [f"From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
             f"Message-ID: <{uuid.uuid4().hex}@remote.test>\r\nMIME-Version: 1.0\r\n"
             f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n".encode(),
             f"--{boundary}\r\nContent-Type: text/plain; charset={charset}\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n".encode(), base64.encodebytes(text).replace(b"\n", b"\r\n")]
    if attachment:
        name, data = attachment
        parts += [f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                  f"Content-Disposition: attachment; filename={name}\r\n"
                  "Content-Transfer-Encoding: base64\r\n\r\n".encode(),
                  base64.encodebytes(data).replace(b"\n", b"\r\n")]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def cp1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese mailers write it: base letters precomposed, tone marks combining."""
    out = ""
    for char in unicodedata.normalize("NFD", text):
        joined = unicodedata.normalize("NFC", out[-1:] + char) if out else char
        if out and len(joined) == 1 and _encodable(joined):
            out = out[:-1] + joined
        else:
            out += char
    return out.encode("cp1258")


def _encodable(char: str) -> bool:
    try:
        char.encode("cp1258")
        return True
    except UnicodeEncodeError:
        return False


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def send(port: int, body: bytes, rcpt: str = "alice@example.test") -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("client.remote.test")
        smtp.mail("bob@remote.test")
        assert smtp.rcpt(rcpt)[0] == 250
        code, reply = smtp.data(body)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, daemons):
    tmp = tmp_path_factory.mktemp("filters")
    (tmp / "rules.toml").write_text(RULES, encoding="utf-8")
    srv = ServeProcess(tmp, extra_toml=(
        f'[antivirus]\nclamd = "{daemons.clamd_tcp}"\nretry_after = 1.0\n'
        f'[spam]\nspamd = "{daemons.spamd_unix}"\n'
        f'[rules]\nfile = "{tmp / "rules.toml"}"\n'))
    add_accounts(srv.data_dir, "example.test", ["alice", "carol"])
    srv.start()
    yield srv
    srv.stop()


def state_of(srv: ServeProcess, queue_id: str) -> str | None:
    for row in json.loads(srv.cli("queue", "list", "--json").stdout):
        if row["id"] == queue_id:
            return row["state"]
    return None


def inbox_has(srv: ServeProcess, needle: bytes, user: str = "alice", folder: str | None = None) -> bytes | None:
    for path in srv.delivered(f"{user}@example.test", folder):
        data = path.read_bytes()
        if needle in data:
            return data
    return None


def test_plain_message_gets_both_headers(server):
    body = mime("plain " + uuid.uuid4().hex, b"Hello Alice, the meeting is at ten.\r\n")
    queue_id = send(server.smtp_port, body)
    data = wait_for(lambda: inbox_has(server, queue_id.encode()), 30, what="delivery")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nX-Virus-Scanned: " in head and b"\r\nX-Spam-Status: No, score=" in head


def test_eicar_is_quarantined_then_released(server):
    body = mime("invoice", b"see attachment\r\n", ("eicar.com", EICAR))
    queue_id = send(server.smtp_port, body)
    wait_for(lambda: state_of(server, queue_id) == "quarantine", 30, what="quarantine")
    listed = json.loads(server.cli("quarantine", "list", "--json").stdout)
    assert [r["id"] for r in listed if r["id"] == queue_id] == [queue_id]
    reason = next(r["reason"] for r in listed if r["id"] == queue_id)
    assert "EICAR" in reason.upper()                              # the signature name is shown
    assert inbox_has(server, queue_id.encode()) is None
    server.cli("quarantine", "release", queue_id)
    wait_for(lambda: inbox_has(server, queue_id.encode()), 30, what="released delivery")


def test_marker_inside_a_zip_is_caught(server):
    body = mime("archive", b"zip attached\r\n", ("files.zip", zipped("readme.txt", b"x " + MARKER + b" y")))
    queue_id = send(server.smtp_port, body)
    wait_for(lambda: state_of(server, queue_id) == "quarantine", 30, what="quarantine")
    assert inbox_has(server, queue_id.encode()) is None


def test_gtube_lands_in_junk_with_spam_flag(server):
    body = mime("cheap pills", GTUBE + b"\r\n")
    queue_id = send(server.smtp_port, body)
    data = wait_for(lambda: inbox_has(server, queue_id.encode(), folder="Junk"), 60, what="Junk delivery")
    assert b"\r\nX-Spam-Flag: YES\r\n" in data
    assert inbox_has(server, queue_id.encode()) is None            # not in the INBOX


def test_vietnamese_keyword_rule_junks_utf8_and_windows1258(server):
    ids = [send(server.smtp_port, mime("Tin mới", "Chương trình khuyến mãi lớn!\r\n".encode("utf-8"))),
           send(server.smtp_port, mime("Tin mới", cp1258("Chương trình khuyến mãi lớn!\r\n"),
                                       charset="windows-1258"))]
    for queue_id in ids:
        wait_for(lambda: inbox_has(server, queue_id.encode(), folder="Junk"), 60, what=f"{queue_id} in Junk")


def test_hold_rule_keeps_it_until_released(server):
    queue_id = send(server.smtp_port, mime("AUDIT report", b"numbers\r\n"))
    wait_for(lambda: state_of(server, queue_id) == "hold", 30, what="hold")
    server.cli("queue", "release", queue_id)
    wait_for(lambda: inbox_has(server, queue_id.encode()), 30, what="delivery after release")


def test_rules_check_names_the_broken_line(server, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text('[[rule]]\nname = "x"\naction = "rejekt"\n[rule.when]\nsender = "a@b.test"\n')
    result = server.cli("rules", "check", str(broken), check=False)
    assert result.returncode != 0
    assert f"{broken}:".encode() in result.stderr and b"rejekt" in result.stderr


def test_clamd_outage_defers_and_nothing_is_delivered_unscanned(server, daemons):
    avspam.stop_clamd(daemons.dir)
    try:
        queue_id = send(server.smtp_port, mime("during outage " + uuid.uuid4().hex, b"hello\r\n"))
        wait_for(lambda: state_of(server, queue_id) == "deferred", 30, what="deferral")
        assert inbox_has(server, queue_id.encode()) is None
    finally:
        avspam.restart_clamd(daemons.dir, daemons.clamd_port)
    server.cli("queue", "retry", "--all")
    data = wait_for(lambda: inbox_has(server, queue_id.encode()), 60, what="delivery after clamd returned")
    assert b"X-Virus-Scanned: " in data


def test_envelope_rule_rejects_during_the_smtp_dialogue(tmp_path):
    """An IP rule answers 5xx at MAIL FROM (nothing accepted, nothing to bounce); other clients pass."""
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nname = "block-loopback-2"\naction = "reject"\n[rule.when]\nclient_ip = "127.0.0.2/32"\n'
        '[[rule]]\nname = "no-spammer"\naction = "reject"\n[rule.when]\nsender = "spammer.test"\n')
    srv = ServeProcess(tmp_path, extra_toml=f'[rules]\nfile = "{tmp_path / "rules.toml"}"\n')
    add_accounts(srv.data_dir, "example.test", ["alice"])
    srv.start()
    try:
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30, source_address=("127.0.0.2", 0)) as smtp:
            smtp.ehlo("client.remote.test")
            assert smtp.mail("bob@remote.test") == (550, b"5.7.1 Rejected by policy")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as smtp:
            smtp.ehlo("client.remote.test")
            assert smtp.mail("x@spammer.test") == (550, b"5.7.1 Rejected by policy")
            assert smtp.mail("bob@remote.test")[0] == 250
            assert smtp.rcpt("alice@example.test")[0] == 250
        assert json.loads(srv.cli("queue", "list", "--json").stdout) == []
    finally:
        srv.stop()


def test_sighup_reloads_rules_in_ingress_and_workers(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "nothing"\naction = "add_header"\nheaders = { "X-Seen" = "1" }\n'
                     '[rule.when]\nsender = "nobody.test"\n')
    srv = ServeProcess(tmp_path, extra_toml=f'[rules]\nfile = "{rules}"\nreload_interval = 3600\n')
    add_accounts(srv.data_dir, "example.test", ["alice"])
    srv.start()
    try:
        send(srv.smtp_port, mime("warm-up", b"first\r\n"))                     # the worker has loaded its rules
        wait_for(lambda: srv.delivered("alice@example.test"), 30, what="first delivery")
        rules.write_text('[[rule]]\nname = "no-spammer"\naction = "reject"\n[rule.when]\nsender = "spammer.test"\n'
                         '[[rule]]\nname = "promo"\naction = "junk"\n[rule.when]\nbody_keyword = "reload-marker"\n')
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b"rules reloaded (SIGHUP)" in srv.log.read_bytes(), 30, what="worker reload")
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as smtp:
            smtp.ehlo("client.remote.test")
            assert smtp.mail("x@spammer.test") == (550, b"5.7.1 Rejected by policy")
        queue_id = send(srv.smtp_port, mime("promo", b"has the reload-marker in it\r\n"))
        wait_for(lambda: inbox_has(srv, queue_id.encode(), folder="Junk"), 30, what="Junk by the new rule")
    finally:
        srv.stop()
