"""Pure pieces of ops: reject reasons, spool summary, rates, trace text, heartbeats, single checks."""

from __future__ import annotations

import os
import socket

import pytest

from mailpipe.core.ids import new_queue_id
from mailpipe.ops import health, trace
from mailpipe.core.config import Config
from mailpipe.core.metrics import reject_reason
from mailpipe.ops.watch import parse_published, rates, spool_summary
from mailpipe.spool.fs import FilesystemSpool
from mailpipe.spool.model import Entry, Recipient, State
from tests.ops import procs

T0 = 1_800_000_000.0


def make_entry(stage="antivirus", state=State.ACTIVE, rcpts=("bob@example.org",), at=T0) -> Entry:
    entry = Entry(id=new_queue_id(), sender="a@remote.test", size=10, received_at=at,
                  recipients=[Recipient(address=a, route="remote" if "example.org" not in a else "local")
                              for a in rcpts], stage=stage, state=state, updated_at=at)
    entry.record(at, "ingress", "received", "client=[127.0.0.1]")
    return entry


@pytest.mark.parametrize("reply, reason", [
    ("550 5.1.1 <x@y>: Recipient address rejected: User unknown", "5.1.1"),
    ("421 4.7.0 Too many connections, try again later", "4.7.0"),
    ("451 try later", "451"),
    ("", "unknown"),
])
def test_reject_reason_is_a_bounded_label(reply, reason):
    assert reject_reason(reply) == reason


def test_spool_summary_counts_states_ages_and_destinations(tmp_path):
    spool = FilesystemSpool(tmp_path / "spool")
    spool.create(make_entry(at=T0), [b"x" * 100])
    spool.create(make_entry(at=T0 + 30), [b"y" * 50])
    deferred = make_entry(stage="remote", state=State.DEFERRED, rcpts=("a@far.test", "b@far.test"), at=T0 - 100)
    spool.create(deferred, [b"z"])
    spool.create(make_entry(stage="remote", state=State.ACTIVE, rcpts=("c@near.test",), at=T0), [b"w"])
    held = make_entry(state=State.HOLD)
    spool.create(held, [b"h"])
    summary = spool_summary(spool, now=T0 + 60)
    assert summary.counts == {"active": 3, "deferred": 1, "hold": 1, "quarantine": 0, "dead": 0}
    assert summary.bytes == spool.usage_bytes() >= 153
    assert summary.oldest_deferred_age == 160
    assert summary.oldest_by_stage == {"antivirus": 60, "remote": 60}
    assert summary.destinations == [("far.test", 1), ("near.test", 1)]


def test_rates_from_published_counters_and_depth_change():
    before = {"published": {"spam": 10.0}, "queues": [{"queue": "spam", "depth": 4, "unacked": 1}]}
    after = {"published": {"spam": 30.0}, "queues": [{"queue": "spam", "depth": 9, "unacked": 1}]}
    result = rates(before, after, 2.0)["spam"]
    assert (result.inbound, result.outbound) == (10.0, 7.5)     # 20 in, depth +5 -> 15 out


def test_rates_unknown_without_a_counter_source():
    snap = {"published": None, "queues": [{"queue": "spam", "depth": 1, "unacked": 0}]}
    result = rates(snap, snap, 1.0)["spam"]
    assert (result.inbound, result.outbound) == (None, None)


def test_parse_published_reads_the_exposition_format():
    text = ('# HELP mailpipe_queue_published_total x\n'
            'mailpipe_queue_published_total{queue="smtp_in"} 12.0\n'
            'mailpipe_queue_published_total{queue="spam"} 3.0\n'
            'mailpipe_queue_published_created{queue="spam"} 1.7e9\n')
    assert parse_published(text) == {"smtp_in": 12.0, "spam": 3.0}


def test_trace_of_a_deferred_message_shows_the_attempt_and_next_time():
    entry = make_entry(stage="remote", state=State.DEFERRED, rcpts=("a@far.test",))
    entry.recipients[0].status, entry.recipients[0].detail = "deferred", "451 4.3.0 try later"
    entry.recipients[0].attempts = 1
    entry.record(T0 + 1, "remote", "deferred", "451 4.3.0 try later; next attempt in 300s", ms=12.5)
    entry.attempts, entry.next_attempt, entry.last_error = 1, T0 + 301, "451 4.3.0 try later"
    lines = trace.render(entry, now=T0 + 1)
    text = "\n".join(lines)
    assert "to        <a@far.test>  [remote] deferred (451 4.3.0 try later), 1 attempt(s)" in text
    assert any("remote" in line and "deferred" in line and "(12.5 ms)" in line for line in lines)
    assert lines[-1] == "final     deferred at remote (attempt 1), next attempt in 300s: 451 4.3.0 try later"
    assert trace.stages_seen(entry) == ["ingress", "remote"]


def config_for(tmp_path, **kw) -> Config:
    return Config(data_dir=tmp_path / "data", **kw)


def test_heartbeat_fresh_alive_stale_or_dead_pid_not(tmp_path):
    config = config_for(tmp_path)
    path = health.write_heartbeat(config, ["smtp_in"], now=T0)
    assert [w["pid"] for w in health.live_workers(config, now=T0 + 1)] == [os.getpid()]
    assert health.live_workers(config, now=T0 + config.metrics.worker_stale_after + 1) == []
    path.write_text(path.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    assert health.live_workers(config, now=T0 + 1) == []


def test_workers_check_names_the_stages_nobody_serves(tmp_path):
    config = config_for(tmp_path)
    assert health.check_workers(config).line().startswith("workers: no live worker")
    health.write_heartbeat(config, ["smtp_in", "antivirus"])
    line = health.check_workers(config).line()
    assert line == "workers: no live worker serves spam, rules, route, local, remote"


def test_listeners_check_names_the_closed_port(tmp_path):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed = procs.free_port()
        config = config_for(tmp_path, ingress={"smtp_port": listening.getsockname()[1]},
                            imap={"enabled": False}, pop3={"enabled": True, "port": closed})
        result = health.check_listeners(config)
    assert not result.ok
    assert result.line() == f"listeners: cannot connect to pop3 127.0.0.1:{closed}"


def test_broker_check_names_an_unreachable_rabbitmq(tmp_path):
    closed = procs.free_port()
    config = config_for(tmp_path, broker_url=f"amqp://guest:guest@127.0.0.1:{closed}/x")
    result = health.check_broker(config)
    assert not result.ok
    assert result.line().startswith(f"broker: cannot connect to 127.0.0.1:{closed}/x")


def test_spamd_check_names_its_address(tmp_path):
    closed = procs.free_port()
    config = config_for(tmp_path, spam={"spamd": f"tcp://127.0.0.1:{closed}"})
    assert health.check_spamd(config).line() == f"spamd: cannot connect to 127.0.0.1:{closed}"
    assert health.check_clamd(config) is None      # not configured: not checked


def test_spool_and_database_checks_pass_on_a_fresh_data_dir(tmp_path):
    config = config_for(tmp_path)
    assert health.check_spool(config).ok
    assert health.check_database(config).ok
    assert health.check_broker(config).ok


def test_grafana_dashboard_only_uses_metrics_mailpipe_exports(tmp_path):
    import json
    import re
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from mailpipe.core.metrics import _Metrics
    from mailpipe.ops.metrics_server import SystemCollector
    registry = CollectorRegistry()
    _Metrics(registry)
    exported = set()
    for family in registry.collect():
        exported |= {s.name for s in family.samples} | {family.name}
    config = config_for(tmp_path, antivirus={"clamd": f"tcp://127.0.0.1:{procs.free_port()}"})
    exported |= {family.name for family in SystemCollector(config).collect()}
    counters = {"mailpipe_ingress_rejected", "mailpipe_stage_processed", "mailpipe_verdicts", "mailpipe_delivered",
                "mailpipe_deferred", "mailpipe_queue_published"}
    exported |= {f"{name}_total" for name in counters}
    exported |= {"mailpipe_stage_duration_seconds_bucket"}
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "ops" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"mailpipe_[a-z_]+", target["expr"])}
    assert used and used <= exported, used - exported


def test_published_counts_sum_over_every_answering_endpoint(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from mailpipe.ops.watch import published_counts

    def serve(text: str) -> ThreadingHTTPServer:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):                    # noqa: N802
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return None
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
    one = serve('mailpipe_queue_published_total{queue="spam"} 3.0\n')
    two = serve('mailpipe_queue_published_total{queue="spam"} 4.0\n'
                'mailpipe_queue_published_total{queue="local"} 1.0\n')
    try:
        peers = [f"127.0.0.1:{two.server_address[1]}", f"127.0.0.1:{procs.free_port()}"]   # one closed
        config = config_for(tmp_path, metrics={"port": one.server_address[1], "peers": peers})
        assert published_counts(config) == {"spam": 7.0, "local": 1.0}
        nobody = config_for(tmp_path, metrics={"port": procs.free_port(), "peers": []})
        assert published_counts(nobody) is None
    finally:
        one.shutdown()
        two.shutdown()
