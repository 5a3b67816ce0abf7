"""Anti-spam filter against a real spamd (TCP and unix socket); the SPAMC parser in pure tests."""

from __future__ import annotations

import pytest

from mailpipe.core.errors import FilterUnavailable
from mailpipe.filters import spam
from mailpipe.filters.spam import FLAG_HEADER, SCORE_HEADER, STATUS_HEADER, SpamFilter, Thresholds
from mailpipe.filters.spamc import SpamcClient, SpamdProtocolError, build_request, parse_reply
from mailpipe.filters.verdict import Action, FilterInput
from tools import avspam
from mailpipe.core.config import SpamConfig
from tests.filters import messages


def _input(raw: bytes, auth_user: str | None = None) -> FilterInput:
    return FilterInput(raw=raw, sender="alice@example.org", recipients=("bob@example.com",), auth_user=auth_user)


def _filter(url: str, thresholds: Thresholds = Thresholds(), **kw) -> SpamFilter:
    options = {"on_error": "defer", "retry_after": 30.0, "max_size": 512 * 1024} | kw
    return SpamFilter(SpamcClient(url, timeout=30), thresholds, **options)


@pytest.fixture(params=["tcp", "unix"])
def spamd_url(request, daemons) -> str:
    return daemons.spamd_tcp if request.param == "tcp" else daemons.spamd_unix


@pytest.mark.daemons
def test_gtube_with_default_thresholds_is_discarded(spamd_url):
    verdict = _filter(spamd_url).check(_input(messages.gtube_mail()))
    assert verdict.score == 1000.0
    assert verdict.action is Action.DISCARD      # 1000 >= discard 20
    headers = dict(verdict.headers)
    assert headers[FLAG_HEADER] == "YES"
    assert headers[STATUS_HEADER].startswith("Yes, score=1000.0 required=5.0 tests=")
    assert "GTUBE" in verdict.rules and "GTUBE" in headers[STATUS_HEADER]
    assert headers[SCORE_HEADER] == "1000.0"


@pytest.mark.daemons
def test_gtube_goes_to_junk_by_default_config(daemons):
    flt = spam.from_config(SpamConfig(spamd=daemons.spamd_tcp), "mx.test")
    verdict = flt.check(_input(messages.gtube_mail()))
    assert verdict.action is Action.JUNK and "GTUBE" in verdict.reason
    assert dict(verdict.headers)[FLAG_HEADER] == "YES"
    scored = spam.from_config(SpamConfig(spamd=daemons.spamd_tcp, gtube_action="score"), "mx.test")
    assert scored.check(_input(messages.gtube_mail())).action is Action.DISCARD


@pytest.mark.daemons
@pytest.mark.parametrize("thresholds, expected", [
    (Thresholds(tag=5, junk=5, quarantine=2000, discard=3000), Action.JUNK),
    (Thresholds(tag=5, junk=1500, quarantine=2000, discard=3000), Action.TAG),
    (Thresholds(tag=5, junk=5, quarantine=900, discard=3000), Action.QUARANTINE),
    (Thresholds(tag=2000, junk=2000, quarantine=2000, discard=3000), Action.ACCEPT),
])
def test_gtube_threshold_ladder(daemons, thresholds, expected):
    verdict = _filter(daemons.spamd_tcp, thresholds).check(_input(messages.gtube_mail()))
    assert verdict.action is expected
    flagged = dict(verdict.headers).get(FLAG_HEADER)
    assert flagged == ("YES" if expected is not Action.ACCEPT else None)


@pytest.mark.daemons
def test_normal_message_is_accepted_with_headers(spamd_url):
    verdict = _filter(spamd_url).check(_input(messages.plain()))
    assert verdict.action is Action.ACCEPT
    headers = dict(verdict.headers)
    assert headers[STATUS_HEADER].startswith("No, score=")
    assert FLAG_HEADER not in headers
    assert verdict.score is not None and verdict.score < 5.0


@pytest.mark.daemons
def test_client_ping(spamd_url):
    assert SpamcClient(spamd_url, timeout=10).ping()


def test_authenticated_sender_skips_scanning():
    url = f"tcp://127.0.0.1:{avspam.free_port()}"          # nothing listens: must not be asked
    verdict = _filter(url).check(_input(messages.gtube_mail(), auth_user="alice@example.org"))
    assert verdict.action is Action.ACCEPT
    assert "authenticated" in dict(verdict.headers)[STATUS_HEADER]
    checked = _filter(url, skip_authenticated=False).check(_input(messages.plain(), auth_user="a@b"))
    assert checked.action is Action.TEMPFAIL


def test_too_large_is_not_sent():
    url = f"tcp://127.0.0.1:{avspam.free_port()}"
    raw = messages.plain(body="word " * 1000)
    verdict = _filter(url, max_size=len(raw) - 1).check(_input(raw))
    assert verdict.action is Action.ACCEPT
    assert "too large" in verdict.reason


def test_spamd_down_defers_or_accepts():
    url = f"tcp://127.0.0.1:{avspam.free_port()}"
    deferred = _filter(url).check(_input(messages.plain()))
    assert deferred.action is Action.TEMPFAIL and deferred.retry_after == 30.0
    accepted = _filter(url, on_error="accept").check(_input(messages.plain()))
    assert accepted.action is Action.ACCEPT and "unscanned" in dict(accepted.headers)[STATUS_HEADER]


def test_build_request_counts_bytes():
    raw = "Subject: é\r\n\r\nx".encode()
    request = build_request("SYMBOLS", raw, user="u")
    assert request == b"SYMBOLS SPAMC/1.5\r\nContent-length: 16\r\nUser: u\r\n\r\n" + raw


def test_parse_reply():
    reply = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 27\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,NO_RECEIVED,NO_RELAYS"
    result = parse_reply(reply)
    assert (result.spam, result.score, result.threshold) == (True, 1000.0, 5.0)
    assert result.rules == ("GTUBE", "NO_RECEIVED", "NO_RELAYS")
    ham = parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.1 / 5.0\r\n\r\n")
    assert (ham.spam, ham.score, ham.rules) == (False, -0.1, ())


@pytest.mark.parametrize("reply", [
    b"", b"garbage", b"SPAMD/1.0 76 Bad header line\r\n\r\n", b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n", b"SPAMD/1.1 0 EX_OK\r\nno colon\r\n\r\n",
])
def test_parse_reply_rejects_bad_replies(reply):
    with pytest.raises(SpamdProtocolError):
        parse_reply(reply)


def test_from_config():
    assert spam.from_config(SpamConfig(), "h") is None
    flt = spam.from_config(SpamConfig(spamd="tcp://127.0.0.1:7830", quarantine_threshold=12), "h")
    assert flt is not None and flt.thresholds.quarantine == 12 and flt.max_size == 512 * 1024
    assert flt.gtube_junk is True


def test_unreachable_client_raises_filter_unavailable():
    with pytest.raises(FilterUnavailable):
        SpamcClient(f"tcp://127.0.0.1:{avspam.free_port()}", timeout=2).check(b"x")


@pytest.mark.parametrize("score, action", [
    (-1.0, Action.ACCEPT), (4.9, Action.ACCEPT), (5.0, Action.JUNK), (9.99, Action.JUNK),
    (10.0, Action.QUARANTINE), (19.9, Action.QUARANTINE), (20.0, Action.DISCARD), (1000.0, Action.DISCARD),
])
def test_default_ladder_boundaries(score, action):
    assert Thresholds().action(score) is action


def test_tag_below_junk():
    ladder = Thresholds(tag=3.0, junk=6.0, quarantine=10.0, discard=20.0)
    assert [ladder.action(s) for s in (2.9, 3.0, 6.0)] == [Action.ACCEPT, Action.TAG, Action.JUNK]


def test_flag_follows_the_lowest_threshold():
    class Fixed:
        def check(self, raw):
            from mailpipe.filters.spamc import SpamResult
            return SpamResult(True, 6.0, 5.0, ("X",))
    flt = SpamFilter(Fixed(), Thresholds(tag=8, junk=5, quarantine=10, discard=20), "defer", 1.0, 10**6)
    verdict = flt.check(_input(messages.plain()))
    assert verdict.action is Action.JUNK
    assert dict(verdict.headers)[FLAG_HEADER] == "YES"
    assert dict(verdict.headers)[STATUS_HEADER] == "Yes, score=6.0 required=5.0 tests=X"
