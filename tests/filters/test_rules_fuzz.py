"""Fuzzing the rules parser, the MIME extraction and the engine: never an unexpected exception."""

from __future__ import annotations

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpipe.filters.rules.engine import Facts, run, run_envelope
from mailpipe.filters.rules.mime import extract, fold
from mailpipe.filters.rules.model import ENVELOPE_FIELDS
from mailpipe.filters.rules.parser import RulesError, parse_text

KEYS = ["client_ip", "helo", "helo_regex", "sender", "sender_regex", "recipient", "recipient_regex", "header",
        "body_keyword", "body_regex", "attachment_name", "attachment_ext", "size_over", "size_under",
        "all", "any", "not", "bogus"]
ACTIONS = ["accept", "add_header", "tag", "junk", "redirect", "hold", "quarantine", "discard", "reject",
           "tempfail", "nonsense"]
plausible = st.sampled_from(["10.0.0.0/8", "::1", "*.example", "(", "khuyến mãi", "5M", "<>", "a@b.example",
                             "b.example", "exe", "x.*", "^a", "", "2001:db8::/32", "100"])
scalars = st.one_of(plausible, plausible, st.text(max_size=20), st.integers(-5, 10**7), st.booleans())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(KEYS + ["name", "regex"]),
                                                                      inner, max_size=3)), max_leaves=8)


def _toml_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if ord(char) < 0x20 or ord(char) == 0x7F or 0xD800 <= ord(char) <= 0xDFFF:
        return f"\\u{ord(char) if ord(char) < 0xD800 else 0xFFFD:04x}"
    return char


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + "".join(_toml_char(c) for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


leaves = st.one_of(
    st.fixed_dictionaries({"client_ip": st.sampled_from(["10.0.0.0/8", "::1", "192.0.2.1", "2001:db8::/32"])}),
    st.fixed_dictionaries({"helo": st.text(max_size=10)}),
    st.fixed_dictionaries({"sender": st.lists(st.text(max_size=15), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"recipient": st.sampled_from(["bob@example.com", "example.com", "*@*", "<>"])}),
    st.fixed_dictionaries({"body_keyword": st.text(min_size=1, max_size=8)}),
    st.fixed_dictionaries({"body_regex": st.sampled_from(["a+", "^x", "ế", "(?s).*"])}),
    st.fixed_dictionaries({"attachment_ext": st.text(min_size=1, max_size=5)}),
    st.fixed_dictionaries({"attachment_name": st.text(min_size=1, max_size=5)}),
    st.fixed_dictionaries({"size_over": st.integers(0, 1000)}),
    st.fixed_dictionaries({"header": st.fixed_dictionaries({"name": st.sampled_from(["Subject", "To"]),
                                                           "regex": st.sampled_from([".", "x", "ế"])})}),
)
conditions = st.recursive(leaves, lambda inner: st.one_of(
    st.builds(lambda items: {"all": items}, st.lists(inner, max_size=3)),
    st.builds(lambda items: {"any": items}, st.lists(inner, max_size=3)),
    st.builds(lambda item: {"not": item}, inner)), max_leaves=6)
valid_rules = st.fixed_dictionaries({
    "name": st.text(min_size=1, max_size=6),
    "action": st.sampled_from(["accept", "junk", "hold", "quarantine", "discard", "reject", "tempfail"]),
    "when": conditions,
}) | st.fixed_dictionaries({"name": st.text(min_size=1, max_size=6), "action": st.just("add_header"),
                            "headers": st.just({"X-A": "1"}), "when": conditions})

rule_tables = st.fixed_dictionaries({
    "name": st.one_of(st.text(min_size=1, max_size=8), st.integers()),
    "action": st.sampled_from(ACTIONS),
    "when": st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
}, optional={"headers": st.dictionaries(st.sampled_from(["X-A", "Bad Name", "X-B"]), scalars, max_size=2),
             "redirect_to": values, "enabled": scalars})


def _rules_text(rules: list[dict]) -> str:
    chunks = []
    for rule in rules:
        body = "\n".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in rule.items())
        chunks.append(f"[[rule]]\n{body}\n")
    return "\n".join(chunks)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parser_on_arbitrary_text(text):
    try:
        parse_text(text, "fuzz.toml")
    except RulesError as exc:
        assert exc.messages and all(m.startswith("fuzz.toml:") for m in exc.messages)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(rule_tables, valid_rules), max_size=4), st.binary(max_size=600), st.text(max_size=30), st.text(max_size=30))
def test_parser_and_engine_on_generated_rules(rules, raw, ip, sender):
    text = _rules_text(rules)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        ruleset = parse_text(text, "gen.toml")
    except RulesError as exc:
        assert all(m.startswith("gen.toml:") for m in exc.messages)
        return
    outcome = run(ruleset, Facts(ip, "helo", sender, ("bob@example.com",), raw))
    assert outcome.verdict.filter == "rules"
    assert set(outcome.verdict.rules) <= {r.name for r in ruleset.rules}
    envelope = run_envelope(ruleset, Facts(ip, "helo", sender, ()), ENVELOPE_FIELDS - {"recipient"})
    assert envelope is None or envelope.action.value in ("reject", "tempfail")


mime_bits = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n", b"--b--\r\n",
    b"Content-Type: text/plain; charset=windows-1258\r\n", b"Content-Type: text/html; charset=x-unknown\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''%E1%BA%BF.exe\r\n", b"Subject: =?utf-8?b?////?=\r\n",
    b"Subject: =?bogus?q?x?=\r\n", b"\r\n", b"=E1=BA=BF=\r\n", b"4bq/\r\n", b"<b>&#99999999;</b>\r\n",
    b"Content-Type: message/rfc822\r\n", b"\xff\xfe\x00",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(mime_bits, st.binary(max_size=40)), max_size=30))
def test_mime_extraction_never_raises(parts):
    facts = extract(b"".join(parts))
    assert isinstance(facts.text, str) and isinstance(facts.folded, str)
    assert all(isinstance(name, str) for name in facts.attachments)


VI_WORDS = ["khuyến", "mãi", "giảm", "giá", "chương", "trình", "lớn", "nhất", "năm", "thưởng", "trúng", "Đặc", "biệt",
            "ưu", "đãi", "HÔM", "NAY", "Mua", "ngay"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(VI_WORDS), min_size=2, max_size=12), st.data(),
       st.sampled_from(["utf8-base64", "utf8-nfd-qp", "cp1258-qp", "cp1258-base64"]),
       st.sampled_from(["NFC", "NFD"]), st.booleans())
def test_vietnamese_keyword_found_in_any_encoding(words, data, encoding, form, upper):
    """Any run of words from the body, in either Unicode form and any case, is found after any encoding."""
    import unicodedata

    from mailpipe.filters.rules.engine import evaluate
    from mailpipe.filters.rules.mime import fold
    from mailpipe.filters.rules.model import BodyKeyword
    from tests.filters import rulemsgs

    start = data.draw(st.integers(0, len(words) - 1))
    end = data.draw(st.integers(start + 1, len(words)))
    keyword = unicodedata.normalize(form, " ".join(words[start:end]))
    keyword = keyword.upper() if upper else keyword
    text = " ".join(words)
    if encoding == "utf8-base64":
        raw = rulemsgs.raw_message(text.encode(), "utf-8", "base64")
    elif encoding == "utf8-nfd-qp":
        raw = rulemsgs.raw_message(unicodedata.normalize("NFD", text).encode(), "utf-8", "quoted-printable")
    else:
        cte = "base64" if encoding.endswith("base64") else "quoted-printable"
        raw = rulemsgs.raw_message(rulemsgs.cp1258_bytes(text), "windows-1258", cte)
    assert evaluate(BodyKeyword((fold(keyword),)), Facts(raw=raw)) is not None


def test_keyword_form_collapses_every_kind_of_whitespace_and_case():
    assert fold("  Khuyến\u00a0MÃI\t\r\n  lớn ") == "khuyến mãi lớn"            # NBSP, tab, CRLF
    assert fold("SALE\u2003now\u3000!") == "sale now !"                          # em space, ideographic space
    assert fold("Stra\u00dfe") == "strasse"                                     # case folding, not lower()
    assert fold("") == ""
