"""Issue 4's "How it will be checked", automated against a real ``mailpipe serve`` (embedded broker).

A dnslib DNS server serves MX records for ``mxtest.test`` (-> 127.0.0.1, Postfix's
smtp-sink), ``reject.test`` (-> 127.0.0.2, aiosmtpd refusing one recipient with
550), ``dead.test`` (-> 127.0.0.3, nothing listens) and a null MX for
``nullmx.test``. The config sets ``[dns] nameservers``, ``[relay] smtp_port`` and
``[ingress] trusted_networks = ["127.0.0.1/32"]`` exactly as the issue says. The
retry schedule is slow (600 s) so that only an operator's ``queue retry`` brings
a deferred message back within a test. One server is shared by the module.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import uuid

import pytest

from mailpipe.spool.fs import FilesystemSpool
from tests.relay_e2e.conftest import REJECTED, add_to_section, relay_toml
from tests.support import ServeProcess, wait_for

pytestmark = pytest.mark.slow

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory, dns_server, relay_port, sink, receiver):
    tmp = tmp_path_factory.mktemp("serve-relay")
    srv = ServeProcess(tmp, extra_toml=relay_toml(dns_server, relay_port, retry_first=600.0, retry_max=600.0))
    add_to_section(srv.config, "ingress", 'trusted_networks = ["127.0.0.1/32"]')
    srv.cli("domain", "add", "example.test")
    srv.cli("user", "add", ALICE, "--password-stdin", input=b"pw")
    srv.start()
    yield srv
    srv.stop()


def message(to: str, subject: str = "relay test") -> tuple[str, bytes]:
    mid = f"<{uuid.uuid4().hex}@example.test>"
    return mid, (f"From: {ALICE}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n\r\n"
                 "Hello over the relay.\r\n").encode()


def send(srv: ServeProcess, to: list[str], body: bytes, sender: str = ALICE) -> str:
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.example.test")
        smtp.mail(sender)
        for rcpt in to:
            code, text = smtp.rcpt(rcpt)
            assert code == 250, (rcpt, code, text)
        code, reply = smtp.data(body)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def queue_list(srv: ServeProcess, *args: str) -> list[dict]:
    return json.loads(srv.cli("queue", "list", "--json", *args).stdout)


def done_entry(srv: ServeProcess, qid: str) -> dict | None:
    path = srv.data_dir / "spool" / "done" / f"{qid}.json"
    return json.loads(path.read_text()) if path.exists() else None


def dsns_for(srv: ServeProcess, needle: str) -> list[bytes]:
    return [p.read_bytes() for p in srv.delivered(ALICE) if needle.encode() in p.read_bytes()
            and b"multipart/report" in p.read_bytes()]


def test_mail_to_mxtest_reaches_the_sink(server, sink):
    mid, body = message("someone@mxtest.test")
    qid = send(server, ["someone@mxtest.test"], body)
    [got] = wait_for(lambda: sink.containing(mid), 30, what="message at smtp-sink")
    assert b"X-Rcpt-Args: <someone@mxtest.test>" in got
    assert f"id {qid}".encode() in got                              # our Received header went along
    done = wait_for(lambda: done_entry(server, qid), 15, what="entry done")
    assert done["recipients"][0]["status"] == "delivered"
    assert done["recipients"][0]["detail"].startswith("250 ")


def test_sink_down_deferred_with_connection_error_then_retry_all_delivers_once(server, sink):
    mid, body = message("someone@mxtest.test")
    sink.stop()
    try:
        qid = send(server, ["someone@mxtest.test"], body)
        rows = wait_for(lambda: [r for r in queue_list(server, "--state", "deferred") if r["id"] == qid],
                        30, what="deferred entry")
        assert "connect to mx.mxtest.test[127.0.0.1]" in rows[0]["last_error"]
        assert "Connection refused" in rows[0]["last_error"]
        assert rows[0]["recipients"] == ["someone@mxtest.test"] and rows[0]["attempts"] == 1
        table = server.cli("queue", "list").stdout.decode()
        assert qid in table and "deferred" in table
    finally:
        sink.start()
    out = server.cli("queue", "retry", "--all").stdout.decode()
    assert "1 message(s) scheduled now" in out
    wait_for(lambda: done_entry(server, qid), 30, what="entry done after retry")
    assert len(sink.containing(mid)) == 1
    assert queue_list(server) == []


def test_null_mx_gives_a_dsn_in_the_local_senders_maildir(server):
    _, body = message("someone@nullmx.test")
    qid = send(server, ["someone@nullmx.test"], body)
    [dsn] = wait_for(lambda: dsns_for(server, qid), 30, what="DSN in alice's Maildir")
    assert b"Final-Recipient: rfc822; someone@nullmx.test" in dsn
    assert b"Status: 5.1.10" in dsn
    assert b"Return-Path: <>" in dsn                                # the DSN has the null sender
    assert done_entry(server, qid)["recipients"][0]["status"] == "failed"


def test_550_for_one_of_two_recipients(server, receiver):
    mid, body = message("good@reject.test")
    qid = send(server, ["good@reject.test", REJECTED], body)
    [dsn] = wait_for(lambda: dsns_for(server, qid), 30, what="DSN for the refused recipient")
    assert f"Final-Recipient: rfc822; {REJECTED}".encode() in dsn
    assert b"Final-Recipient: rfc822; good@reject.test" not in dsn
    assert b"Diagnostic-Code: smtp; 550 5.1.1" in dsn
    got = [m for m in receiver.messages if mid.encode() in m.content]
    assert len(got) == 1 and got[0].rcpt_tos == ["good@reject.test"]


def test_no_dsn_for_the_null_sender(server):
    _, body = message(REJECTED)
    qid = send(server, [REJECTED], body, sender="")
    done = wait_for(lambda: done_entry(server, qid), 30, what="entry done")
    assert done["recipients"][0]["status"] == "failed"
    assert not any(e["event"] == "bounced" for e in done["trace"])
    spool = FilesystemSpool(server.data_dir / "spool")
    everything = list(spool.entries()) + [spool.load(i) for i in spool.done_ids()]
    assert qid in {e.id for e in everything}
    assert not any(e.is_bounce and qid in e.model_dump_json() for e in everything)


def test_hold_release_delete(server):
    _, body = message("x@dead.test")
    qid = send(server, ["x@dead.test"], body)
    wait_for(lambda: [r for r in queue_list(server, "--state", "deferred") if r["id"] == qid], 30,
             what="deferred")
    server.cli("queue", "hold", qid)
    assert [r["id"] for r in queue_list(server, "--state", "hold")] == [qid]
    server.cli("queue", "release", qid)
    second = wait_for(lambda: [r for r in queue_list(server, "--state", "deferred")
                               if r["id"] == qid and r["attempts"] == 2], 30, what="second attempt")
    assert "127.0.0.3" in second[0]["last_error"]
    server.cli("queue", "delete", qid)
    assert all(r["id"] != qid for r in queue_list(server))
    assert server.cli("queue", "show", qid, check=False).returncode != 0


def test_queue_bounce_sends_a_dsn_now(server):
    _, body = message("y@dead.test")
    qid = send(server, ["y@dead.test"], body)
    wait_for(lambda: [r for r in queue_list(server, "--state", "deferred") if r["id"] == qid], 30,
             what="deferred")
    assert "bounced, DSN" in server.cli("queue", "bounce", qid).stdout.decode()
    [dsn] = wait_for(lambda: dsns_for(server, qid), 30, what="DSN after queue bounce")
    assert b"Final-Recipient: rfc822; y@dead.test" in dsn and b"Status: 5.0.0" in dsn


def test_kill_9_of_the_worker_mid_flow_loses_nothing(server, sink):
    """``kill -9`` of the worker while 40 messages flow to smtp-sink: every message arrives.

    A duplicate at the sink is possible only for a message whose final "." the sink
    had already answered with 250 when the worker died, before the spool save that
    records the recipient as delivered: SMTP offers no way to ask the receiver whether
    it has the message, so at most one duplicate per in-flight task (the worker's
    thread count) is allowed, and none may be missing.
    """
    total = 40
    mids = [message("someone@mxtest.test", f"kill test {i}") for i in range(total)]
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        for i, (mid, body) in enumerate(mids):
            smtp.sendmail(ALICE, ["someone@mxtest.test"], body)
            if i == total // 4:
                wait_for(lambda: any(sink.containing(m) for m, _ in mids[:i]), 30, what="first deliveries")
                victims = server.worker_pids()
                assert victims
                for pid in victims:
                    os.kill(pid, signal.SIGKILL)
    counts = wait_for(lambda: _all_arrived(sink, [m for m, _ in mids]), 120, what="all messages at the sink")
    assert all(n >= 1 for n in counts.values())
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= 4, counts
    left: list[dict] = []

    def queue_is_empty() -> bool:
        left[:] = queue_list(server)
        return not left

    try:
        wait_for(queue_is_empty, 30, what="empty queue")
    except AssertionError:
        raise AssertionError(f"entries left in the queue: {left}; serve log: "
                             f"{server.log.read_text()[-4000:]}") from None
    assert set(server.worker_pids()) - set(victims), "serve restarted the worker"


def _all_arrived(sink, mids: list[str]) -> dict[str, int] | None:
    counts = {mid: len(sink.containing(mid)) for mid in mids}
    return counts if all(counts.values()) else None

