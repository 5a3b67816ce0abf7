"""Against a real ``mailpipe serve``: exact metric counts over HTTP, /healthz, trace and health."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.ops import procs
from tests.ops.conftest import USER

STAGES = ("smtp_in", "antivirus", "spam", "rules", "route", "local", "remote")
MESSAGES = 10


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.fixture(scope="module")
def flow(served):
    """Ten messages to a local user and one refused recipient, all delivered before the test looks."""
    served.before = scrape(served.metrics)
    refused = procs.send(served.smtp, MESSAGES, rcpt=USER, bad_rcpt="nobody@example.org")
    assert refused == 1
    procs.wait_for(lambda: procs.maildir_count(served.data_dir) == MESSAGES, 60, "10 deliveries")
    procs.wait_for(lambda: len(list((served.data_dir / "spool" / "done").glob("*.json"))) == MESSAGES,
                   30, "10 finished entries")
    return served


def test_metrics_counts_are_exact_after_a_known_flow(flow):
    m = scrape(flow.metrics)
    assert m['mailpipe_delivered_total{route="local"}'] == MESSAGES
    assert m["mailpipe_ingress_accepted_total"] == MESSAGES
    assert m["mailpipe_ingress_connections_total"] - flow.before["mailpipe_ingress_connections_total"] == 1
    assert m['mailpipe_ingress_rejected_total{reason="5.1.1"}'] == 1
    assert m['mailpipe_queue_published_total{queue="smtp_in"}'] == MESSAGES
    for stage in ("smtp_in", "antivirus", "spam", "rules", "route", "local"):
        assert m[f'mailpipe_stage_processed_total{{stage="{stage}"}}'] == MESSAGES
        assert m[f'mailpipe_stage_duration_seconds_count{{stage="{stage}"}}'] == MESSAGES
    for name in ("antivirus", "spam", "rules"):
        assert m[f'mailpipe_verdicts_total{{action="not configured",filter="{name}"}}'] == MESSAGES
    assert 'mailpipe_stage_processed_total{stage="remote"}' not in m


def test_metrics_show_every_stage_queue_depth_and_spool_gauges(flow):
    m = scrape(flow.metrics)
    for stage in STAGES:
        assert m[f'mailpipe_queue_depth{{queue="{stage}",stage="{stage}"}}'] == 0
    assert m['mailpipe_spool_messages{state="active"}'] == 0
    assert m["mailpipe_spool_bytes"] == 0
    assert m["mailpipe_oldest_deferred_age_seconds"] == 0
    assert not any(k.startswith("mailpipe_filter_daemon_up") for k in m)   # none configured


def test_healthz_beside_metrics_is_ok(flow):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{flow.metrics}/healthz", timeout=30) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    assert (status, body) == (200, b"ok\n"), body.decode()


def test_trace_of_a_delivered_message_names_every_stage(flow):
    queue_id = sorted(p.stem for p in (flow.data_dir / "spool" / "done").glob("*.json"))[0]
    result = procs.mailpipe(flow.config, "trace", queue_id)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"queue ID  {queue_id}" in out
    for stage in ("ingress", "smtp_in", "antivirus", "spam", "rules", "route", "local"):
        assert re.search(rf"^\S+ \S+\s+\+\d+\.\d+s\s+{stage}\s", out, re.MULTILINE), stage
    assert "received" in out and "client=" in out
    assert "final     done: 1 delivered" in out
    data = json.loads(procs.mailpipe(flow.config, "trace", queue_id, "--json").stdout)
    assert data["stages"] == ["ingress", "smtp_in", "antivirus", "spam", "rules", "route", "local"]


def test_trace_of_unknown_id_fails_with_one_line(flow):
    result = procs.mailpipe(flow.config, "trace", "K18DDGM9QN2ZNZ6G")
    assert result.returncode == 1
    assert "no such message" in result.stderr


def test_health_passes_while_serve_runs(flow):
    result = procs.mailpipe(flow.config, "health", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("broker", "spool", "database", "listeners", "workers"):
        assert re.search(rf"^{name}: ", result.stdout, re.MULTILINE), name


def test_health_fails_naming_clamd_on_a_closed_port(flow):
    closed = procs.free_port()
    result = procs.mailpipe(flow.config, "health", env={"MAILPIPE_ANTIVIRUS__CLAMD": f"tcp://127.0.0.1:{closed}"})
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [f"clamd: cannot connect to 127.0.0.1:{closed}"], result.stdout


def test_metrics_report_clamd_down_when_configured_but_closed(flow, tmp_path):
    """The daemon gauge is computed at scrape time from the scraping process's config."""
    from mailpipe.core.config import load
    from mailpipe.ops.metrics_server import SystemCollector
    closed = procs.free_port()
    config = load(flow.config, antivirus={"clamd": f"tcp://127.0.0.1:{closed}"})
    families = {f.name: f for f in SystemCollector(config).collect()}
    samples = families["mailpipe_filter_daemon_up"].samples
    assert [(s.labels["daemon"], s.value) for s in samples] == [("clamd", 0.0)]


def test_unknown_path_is_404(flow):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{flow.metrics}/nope", timeout=10)
    assert info.value.code == 404
