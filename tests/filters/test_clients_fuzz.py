"""Fuzzing the pure parts of the daemon clients: reply parser and address parser."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.core.errors import ConfigError
from mailpipe.core.endpoint import Endpoint, parse_endpoint
from mailpipe.filters.spamc import SpamdProtocolError, SpamResult, parse_reply

reply_bits = st.sampled_from([b"SPAMD/1.1 0 EX_OK", b"SPAMD/1.5 76 Bad", b"\r\n", b"\r\n\r\n", b"Spam: True ; 5 / 5",
                              b"Spam: no ; -1.5 / x", b"Content-length: 9", b":", b"GTUBE,", b"\xff\x00", b"1e309"])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(reply_bits, st.binary(max_size=20)), max_size=12))
def test_parse_reply_only_raises_protocol_errors(parts):
    try:
        result = parse_reply(b"".join(parts))
    except SpamdProtocolError:
        return
    assert isinstance(result, SpamResult) and isinstance(result.score, float)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), st.builds(lambda a, b: a + b, st.sampled_from(["tcp://", "unix:", "tcp://[", ""]),
                                                 st.text(max_size=40))))
def test_parse_endpoint_only_raises_config_errors(url):
    try:
        endpoint = parse_endpoint(url)
    except ConfigError:
        return
    assert isinstance(endpoint, Endpoint)
    assert endpoint.path.startswith("/") or (endpoint.host and 0 < endpoint.port < 65536)
