"""DSNs parse back with the standard library into the RFC 3464 structure."""

from __future__ import annotations

import email
import email.policy

from mailpipe.delivery.dsn import build_dsn, should_bounce
from mailpipe.delivery.result import RecipientResult

ORIGINAL = (b"Received: from a by b\r\nFrom: Alice <alice@local.test>\r\nTo: bob@remote.test\r\n"
            b"Subject: lunch\r\nMessage-ID: <m1@local.test>\r\n\r\nsecret body text\r\n")
FAILED = [RecipientResult("bob@remote.test", "failed", "550 5.1.1 <bob@remote.test>: no such user",
                          "mx.remote.test[127.0.0.1]:25"),
          RecipientResult("carol@nullmx.test", "failed", "5.1.10 domain nullmx.test does not accept mail")]


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def build(**kw) -> bytes:
    args = dict(reporting_mta="mail.local.test", arrival=1_700_000_000.0, queue_id="QID1",
                now=1_700_000_100.0)
    args.update(kw)
    return build_dsn(ORIGINAL, "alice@local.test", FAILED, **args)


def test_dsn_is_multipart_report_with_three_parts():
    raw = build()
    assert b"\n" not in raw.replace(b"\r\n", b"")          # CRLF only
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"].addresses[0].addr_spec == "MAILER-DAEMON@mail.local.test"
    assert msg["To"].addresses[0].addr_spec == "alice@local.test"
    assert msg["Auto-Submitted"] == "auto-replied"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                     "text/rfc822-headers"]
    assert "bob@remote.test" in parts[0].get_content()
    assert "Subject: lunch" in parts[2].get_content()
    assert "secret body text" not in raw.decode()           # headers only, never the body


def test_delivery_status_fields():
    status = list(parse(build()).iter_parts())[1]
    per_message, bob, carol = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mail.local.test"
    assert per_message["X-Mailpipe-Queue-ID"] == "QID1"
    assert "Arrival-Date" in per_message
    assert bob["Final-Recipient"] == "rfc822; bob@remote.test"
    assert bob["Action"] == "failed" and bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx.remote.test"
    assert bob["Diagnostic-Code"].startswith("smtp; 550 5.1.1")
    assert carol["Status"] == "5.1.10" and "Remote-MTA" not in carol


def test_delayed_dsn():
    msg = parse(build(delayed=True, retry_until=1_700_432_000.0))
    assert "Delayed" in msg["Subject"]
    bob = list(msg.iter_parts())[1].get_payload()[1]
    assert bob["Action"] == "delayed" and "Will-Retry-Until" in bob


def test_remote_reply_cannot_inject_fields():
    evil = [RecipientResult("x@y.test", "failed", "550 no\r\nX-Injected: yes", "mx[127.0.0.1]:25")]
    raw = build_dsn(ORIGINAL, "alice@local.test", evil, reporting_mta="m.test", arrival=0.0,
                    queue_id="Q", now=1.0)
    status = list(parse(raw).iter_parts())[1].get_payload()[1]
    assert status["X-Injected"] is None


def test_never_bounce_a_bounce():
    assert not should_bounce("")
    assert not should_bounce("<>")
    assert not should_bounce("MAILER-DAEMON@remote.test")
    assert not should_bounce("<mailer-daemon@x.test>")
    assert should_bounce("alice@local.test")
