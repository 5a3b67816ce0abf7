"""Anti-virus filter against a real clamd (TCP and unix socket), and clamd outages."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from mailpipe.core.errors import ConfigError, FilterUnavailable
from mailpipe.filters import antivirus
from mailpipe.filters.antivirus import SCANNED_HEADER, STATUS_HEADER, AntivirusFilter
from mailpipe.filters.clamd_client import ClamdClient
from mailpipe.filters.verdict import Action, FilterInput
from tools import avspam
from mailpipe.core.config import AntivirusConfig
from tests.filters import messages

pytestmark = pytest.mark.daemons


def _input(raw: bytes) -> FilterInput:
    return FilterInput(raw=raw, sender="alice@example.org", recipients=("bob@example.com",), queue_id="Q1")


def _filter(url: str, **kw) -> AntivirusFilter:
    options = {"action": "quarantine", "on_error": "defer", "retry_after": 60.0} | kw
    return AntivirusFilter(ClamdClient(url, timeout=10), hostname="mx.test", **options)


@pytest.fixture(params=["tcp", "unix"])
def clamd_url(request, daemons) -> str:
    return daemons.clamd_tcp if request.param == "tcp" else daemons.clamd_unix


def test_eicar_in_base64_attachment_is_quarantined(clamd_url):
    raw = messages.eicar_mail()
    assert b"Content-Transfer-Encoding: base64" in raw
    verdict = _filter(clamd_url).check(_input(raw))
    assert verdict.action is Action.QUARANTINE
    assert verdict.rules == ("Custom.Test.EICAR.UNOFFICIAL",)
    assert verdict.filter == "antivirus"
    assert all(name != SCANNED_HEADER for name, _ in verdict.headers)


def test_infected_can_be_discarded(daemons):
    verdict = _filter(daemons.clamd_tcp, action="discard").check(_input(messages.eicar_mail()))
    assert verdict.action is Action.DISCARD
    assert verdict.stops


def test_marker_inside_zip_attachment_is_caught(clamd_url):
    verdict = _filter(clamd_url).check(_input(messages.zipped_marker_mail()))
    assert verdict.action is Action.QUARANTINE
    assert verdict.rules == ("Custom.Test.Marker.UNOFFICIAL",)


def test_clamav_test_file_attachment_is_caught(daemons):
    if not avspam.CLAM_EXE.is_file():
        pytest.skip("clamav-testfiles not installed")
    raw = messages.with_attachment(avspam.CLAM_EXE.read_bytes(), "clam.exe")
    verdict = _filter(daemons.clamd_tcp).check(_input(raw))
    assert verdict.rules == ("Custom.Test.ClamAVTestFile.UNOFFICIAL",)


def test_clean_message_is_accepted_with_header(clamd_url):
    verdict = _filter(clamd_url).check(_input(messages.plain()))
    assert verdict.action is Action.ACCEPT
    assert (SCANNED_HEADER, "ClamAV on mx.test") in verdict.headers
    assert not verdict.stops


def test_big_clean_message_is_scanned(daemons):
    raw = messages.with_attachment(bytes(range(256)) * 8192, "data.bin")   # 2 MiB, many chunks
    assert _filter(daemons.clamd_tcp).check(_input(raw)).action is Action.ACCEPT


def test_client_ping_and_version(daemons):
    client = ClamdClient(daemons.clamd_unix, timeout=5)
    assert client.ping()
    assert client.version().startswith("ClamAV")


def test_scans_share_one_clamd_session_per_thread(clamd_url):
    client = ClamdClient(clamd_url, timeout=10)
    assert client.scan(messages.plain()).infected is False
    session = client._local.session
    assert client.scan(messages.eicar_mail()).infected is True        # same connection, next request
    assert client.scan(messages.plain()).infected is False
    assert client._local.session is session and session.clamd_socket.fileno() >= 0
    other: list = []
    thread = threading.Thread(target=lambda: other.append((client.scan(messages.plain()), client._local.session)))
    thread.start()
    thread.join(30)
    assert other[0][0].infected is False and other[0][1] is not session   # its own session


def test_a_session_clamd_closed_is_replaced_without_a_failure(clamd_url):
    client = ClamdClient(clamd_url, timeout=10)
    client.scan(messages.plain())
    old = client._local.session
    old.clamd_socket.sendall(b"nEND\n")           # clamd ends the session, as after its IdleTimeout
    assert old._replies.read() == b""              # ... and closes the connection
    assert client.scan(messages.eicar_mail()).infected is True
    assert client._local.session is not old


def test_clamd_down_tempfails():
    url = f"tcp://127.0.0.1:{avspam.free_port()}"
    verdict = _filter(url, retry_after=42.0).check(_input(messages.plain()))
    assert verdict.action is Action.TEMPFAIL
    assert verdict.retry_after == 42.0
    assert verdict.stops


def test_clamd_down_accept_marks_unscanned():
    url = f"unix:{tempfile.gettempdir()}/mailpipe-no-such-clamd.sock"
    verdict = _filter(url, on_error="accept").check(_input(messages.plain()))
    assert verdict.action is Action.ACCEPT
    assert dict(verdict.headers)[STATUS_HEADER].startswith("unscanned")
    assert SCANNED_HEADER not in dict(verdict.headers)


@pytest.fixture
def own_clamd(tmp_path_factory):
    if not avspam.binaries_present():
        pytest.skip("clamd not installed")
    root = Path(tempfile.mkdtemp(prefix="mpcl"))
    port = avspam.start_clamd(root, stream_max="1M")
    avspam.wait_clamd(f"tcp://127.0.0.1:{port}")
    yield root, port
    avspam.stop(root)
    shutil.rmtree(root, ignore_errors=True)


def test_clamd_stopped_mid_run_then_back(own_clamd):
    root, port = own_clamd
    flt = _filter(f"tcp://127.0.0.1:{port}")
    assert flt.check(_input(messages.eicar_mail())).action is Action.QUARANTINE
    avspam.stop_clamd(root)
    assert flt.check(_input(messages.eicar_mail())).action is Action.TEMPFAIL
    assert flt.check(_input(messages.plain())).action is Action.TEMPFAIL
    avspam.restart_clamd(root, port)
    assert flt.check(_input(messages.eicar_mail())).action is Action.QUARANTINE


def test_over_stream_limit_is_unavailable_not_a_crash(own_clamd):
    _, port = own_clamd
    client = ClamdClient(f"tcp://127.0.0.1:{port}", timeout=10)
    with pytest.raises(FilterUnavailable):
        client.scan(b"x" * (3 * 1024 * 1024))
    verdict = _filter(f"tcp://127.0.0.1:{port}").check(_input(b"y" * (3 * 1024 * 1024)))
    assert verdict.action is Action.TEMPFAIL


def test_from_config():
    assert antivirus.from_config(AntivirusConfig(), "h") is None
    flt = antivirus.from_config(AntivirusConfig(clamd="unix:/run/x.sock", action="discard"), "h")
    assert flt is not None and flt.action is Action.DISCARD and flt.on_error == "defer"
    with pytest.raises(ValidationError, match="tcp://host:port"):
        AntivirusConfig(clamd="http://x")
    with pytest.raises(ConfigError):
        antivirus.from_config(AntivirusConfig.model_construct(clamd="http://x"), "h")
