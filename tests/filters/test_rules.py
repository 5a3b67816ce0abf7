"""Rules: every condition and action, Vietnamese keyword cases, SMTP-time subset, errors, reload."""

from __future__ import annotations

import logging
import os
import textwrap
import unicodedata

import pytest

from mailpipe.core.clock import FakeClock
from mailpipe.filters.rules import RulesFilter, from_config
from mailpipe.filters.rules.parser import RulesError
from mailpipe.filters.verdict import Action, FilterInput
from mailpipe.core.config import RulesConfig
from tests.filters import rulemsgs

PLAIN = b"From: a@example.net\r\nTo: bob@example.com\r\nSubject: hello\r\n\r\nJust a note.\r\n"


def rules(tmp_path, text: str, name: str = "rules.toml") -> RulesFilter:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return RulesFilter(path, clock=FakeClock(), check_interval=1.0)


def one_rule(tmp_path, when: str, action: str = "quarantine", extra: str = "") -> RulesFilter:
    return rules(tmp_path, f'[[rule]]\nname = "r"\naction = "{action}"\n{extra}\n[rule.when]\n{when}\n')


def msg(raw: bytes = PLAIN, sender: str = "a@example.net", recipients=("bob@example.com",),
        client_ip: str | None = "192.0.2.10", helo: str | None = "mail.example.net") -> FilterInput:
    return FilterInput(raw=raw, sender=sender, recipients=tuple(recipients), client_ip=client_ip, helo=helo)


def hits(flt: RulesFilter, m: FilterInput) -> bool:
    verdict = flt.check(m)
    assert verdict.filter == "rules"
    return verdict.action is not Action.ACCEPT


# --- conditions -----------------------------------------------------------------------------

@pytest.mark.parametrize("ip, expected", [
    ("203.0.113.7", True), ("203.0.114.1", False), ("2001:db8::5", True), ("2001:db9::1", False),
    ("::ffff:203.0.113.9", True), ("198.51.100.1", True), ("198.51.100.2", False), (None, False), ("junk", False),
])
def test_client_ip_v4_v6_cidr(tmp_path, ip, expected):
    flt = one_rule(tmp_path, 'client_ip = ["203.0.113.0/24", "2001:db8::/32", "198.51.100.1"]')
    assert hits(flt, msg(client_ip=ip)) is expected


@pytest.mark.parametrize("when, helo, expected", [
    ('helo = "*.example.net"', "mail.EXAMPLE.net", True),
    ('helo = "*.example.net"', "example.org", False),
    ('helo_regex = "^\\\\[?\\\\d+\\\\.\\\\d+"', "[192.0.2.1]", True),
    ('helo_regex = "^\\\\[?\\\\d+\\\\.\\\\d+"', "mx.example.net", False),
    ('helo = "localhost"', None, False),
])
def test_helo(tmp_path, when, helo, expected):
    assert hits(one_rule(tmp_path, when), msg(helo=helo)) is expected


@pytest.mark.parametrize("pattern, sender, expected", [
    ('"spammer@bad.example"', "Spammer@Bad.Example", True),
    ('"spammer@bad.example"', "other@bad.example", False),
    ('"bad.example"', "anyone@bad.example", True),
    ('"bad.example"', "anyone@sub.bad.example", False),
    ('"*@*.bad.example"', "x@sub.bad.example", True),
    ('"news-*@example.org"', "news-42@example.org", True),
    ('"news-*@example.org"', "info@example.org", False),
    ('"<>"', "", True),
    ('"<>"', "a@b.example", False),
])
def test_sender_address_domain_glob_null(tmp_path, pattern, sender, expected):
    assert hits(one_rule(tmp_path, f"sender = {pattern}"), msg(sender=sender)) is expected


def test_sender_regex(tmp_path):
    flt = one_rule(tmp_path, 'sender_regex = "^[0-9]{6,}@"')
    assert hits(flt, msg(sender="1234567@free.example"))
    assert not hits(flt, msg(sender="abc123@free.example"))


def test_recipient_any_of_several(tmp_path):
    flt = one_rule(tmp_path, 'recipient = ["ceo@example.com"]')
    assert hits(flt, msg(recipients=("bob@example.com", "CEO@example.com")))
    assert not hits(flt, msg(recipients=("bob@example.com",)))
    assert hits(one_rule(tmp_path, 'recipient_regex = "^sales\\\\+"'), msg(recipients=("sales+x@example.com",)))


def test_header_regex_on_decoded_header(tmp_path):
    flt = one_rule(tmp_path, 'header = { name = "Subject", regex = "tin\\\\s+tức" }')
    assert hits(flt, msg(raw=rulemsgs.utf8_base64()))            # Subject is RFC 2047 encoded
    assert not hits(flt, msg())
    several = one_rule(tmp_path, 'header = [{ name = "X-Mailer", regex = "bulk" }, { name = "To", regex = "bob@" }]')
    assert hits(several, msg())


@pytest.mark.parametrize("raw", [rulemsgs.utf8_base64(), rulemsgs.utf8_nfd_qp(), rulemsgs.cp1258_qp()],
                         ids=["utf8-base64", "utf8-decomposed-qp", "windows1258-qp"])
@pytest.mark.parametrize("keyword", ["khuyến mãi", unicodedata.normalize("NFD", "KHUYẾN MÃI")],
                         ids=["precomposed", "decomposed-upper"])
def test_vietnamese_keyword(tmp_path, raw, keyword):
    flt = one_rule(tmp_path, f'body_keyword = ["{keyword}"]', action="junk")
    verdict = flt.check(msg(raw=raw))
    assert verdict.action is Action.JUNK
    assert "khuyến mãi" in verdict.reason


def test_vietnamese_keyword_absent(tmp_path):
    flt = one_rule(tmp_path, 'body_keyword = "khuyến mãi"')
    assert not hits(flt, msg(raw=rulemsgs.utf8_base64("Chương trình họp tuần sau")))
    assert not hits(flt, msg(raw=rulemsgs.cp1258_qp("Chương trình họp tuần sau")))


def test_iso_8859_qp_keyword_and_html(tmp_path):
    latin = rulemsgs.raw_message("Réunion au café à midi".encode("iso-8859-1"), "iso-8859-1", "quoted-printable")
    flt = one_rule(tmp_path, 'body_keyword = "CAFÉ À MIDI"')
    assert hits(flt, msg(raw=latin))
    html = rulemsgs.html_mail("<p>Gi&#7843;m <b>gi&aacute;</b> h&ocirc;m nay</p>")
    assert hits(one_rule(tmp_path, 'body_keyword = "giảm giá"'), msg(raw=html))


def test_body_regex(tmp_path):
    flt = one_rule(tmp_path, 'body_regex = "gi[aả]m\\\\s+gi[aá]\\\\s+\\\\d+%"')
    assert hits(flt, msg(raw=rulemsgs.cp1258_qp()))
    assert not hits(flt, msg())


@pytest.mark.parametrize("when, expected", [
    ('attachment_ext = ["exe", ".SCR"]', True), ('attachment_ext = "zip"', False),
    ('attachment_name = "invoice*.pdf.*"', True), ('attachment_name = "*.docx"', False),
])
def test_attachments(tmp_path, when, expected):
    raw = rulemsgs.with_files("Invoice-2026.pdf.exe", "notes.txt")
    assert hits(one_rule(tmp_path, when), msg(raw=raw)) is expected


def test_size(tmp_path):
    big = PLAIN + b"x" * 2048
    assert hits(one_rule(tmp_path, 'size_over = "1K"'), msg(raw=big))
    assert not hits(one_rule(tmp_path, 'size_over = 4096'), msg(raw=big))
    assert hits(one_rule(tmp_path, 'size_under = 200'), msg())


def test_all_any_not(tmp_path):
    flt = one_rule(tmp_path, textwrap.dedent('''\
        any = [{ sender = "bad.example" }, { helo = "*.bad.example" }]
        not = { client_ip = "10.0.0.0/8" }
        size_under = "1M"'''))
    assert hits(flt, msg(sender="x@bad.example"))
    assert hits(flt, msg(helo="mx.bad.example"))
    assert not hits(flt, msg(sender="x@bad.example", client_ip="10.1.2.3"))
    assert not hits(flt, msg(sender="x@good.example"))
    nested = one_rule(tmp_path, 'all = [{ not = { any = [{ sender = "a.example" }, { sender = "b.example" }] } }]')
    assert hits(nested, msg(sender="x@c.example"))
    assert not hits(nested, msg(sender="x@b.example"))


# --- actions --------------------------------------------------------------------------------

ACTIONS_FILE = '''
[[rule]]
name = "stamp"
action = "add_header"
headers = { "X-Rules-Seen" = "yes" }
[rule.when]
all = []

[[rule]]
name = "vip"
action = "accept"
[rule.when]
sender = "boss@example.com"

[[rule]]
name = "promo"
action = "add_header"
headers = { "X-Promo" = "vi" }
[rule.when]
body_keyword = "khuyến mãi"

[[rule]]
name = "to-legal"
action = "redirect"
redirect_to = ["legal@example.com"]
[rule.when]
header = { name = "Subject", regex = "subpoena" }

[[rule]]
name = "newsletter"
action = "tag"
headers = { "X-Newsletter" = "yes" }
[rule.when]
sender = "news-*@*"

[[rule]]
name = "exe"
action = "hold"
[rule.when]
attachment_ext = "exe"

[[rule]]
name = "drop"
action = "discard"
[rule.when]
sender = "noise.example"

[[rule]]
name = "grey"
action = "tempfail"
[rule.when]
helo = "unknown"

[[rule]]
name = "promo-junk"
action = "junk"
[rule.when]
body_keyword = "giảm giá"

[[rule]]
name = "block"
action = "reject"
[rule.when]
client_ip = "203.0.113.0/24"
'''


@pytest.fixture
def actions(tmp_path) -> RulesFilter:
    return rules(tmp_path, ACTIONS_FILE)


def test_add_header_accumulates_and_terminal_action_wins(actions):
    verdict = actions.check(msg(raw=rulemsgs.utf8_base64(), client_ip="203.0.113.5"))
    assert verdict.action is Action.JUNK                 # promo-junk comes before block
    assert verdict.headers == (("X-Rules-Seen", "yes"), ("X-Promo", "vi"))
    assert verdict.rules == ("stamp", "promo", "promo-junk")


def test_accept_stops_evaluation(actions):
    verdict = actions.check(msg(raw=rulemsgs.utf8_base64(), sender="boss@example.com", client_ip="203.0.113.5"))
    assert verdict.action is Action.ACCEPT
    assert verdict.rules == ("stamp", "vip")
    assert verdict.headers == (("X-Rules-Seen", "yes"),)


@pytest.mark.parametrize("kwargs, action", [
    ({"raw": PLAIN.replace(b"hello", b"Subpoena 12")}, Action.REDIRECT),
    ({"sender": "news-7@example.org"}, Action.TAG),
    ({"raw": rulemsgs.with_files("a.exe")}, Action.HOLD),
    ({"sender": "x@noise.example"}, Action.DISCARD),
    ({"helo": "unknown"}, Action.TEMPFAIL),
    ({"client_ip": "203.0.113.5"}, Action.REJECT),
    ({}, Action.ADD_HEADER),
])
def test_each_action(actions, kwargs, action):
    verdict = actions.check(msg(**kwargs))
    assert verdict.action is action
    if action is Action.REDIRECT:
        assert verdict.redirect_to == ("legal@example.com",)
    if action is Action.TAG:
        assert ("X-Newsletter", "yes") in verdict.headers


def test_no_rule_matches_is_accept(tmp_path):
    flt = one_rule(tmp_path, 'sender = "nobody.example"')
    verdict = flt.check(msg())
    assert (verdict.action, verdict.headers, verdict.rules) == (Action.ACCEPT, (), ())


# --- SMTP time ------------------------------------------------------------------------------

ENVELOPE_FILE = '''
[[rule]]
name = "trusted"
action = "accept"
[rule.when]
client_ip = "192.0.2.0/24"

[[rule]]
name = "stamp"
action = "add_header"
headers = { "X-A" = "b" }
[rule.when]
body_keyword = "anything"

[[rule]]
name = "bad-net"
action = "reject"
reason = "network blocked by policy"
[rule.when]
client_ip = ["203.0.113.0/24", "2001:db8:bad::/48"]

[[rule]]
name = "no-ceo-mail-from-outside"
action = "reject"
[rule.when]
recipient = "ceo@example.com"
not = { client_ip = "10.0.0.0/8" }

[[rule]]
name = "content"
action = "quarantine"
[rule.when]
body_keyword = "secret"

[[rule]]
name = "late-reject"
action = "reject"
[rule.when]
sender = "late.example"
'''


def test_envelope_ip_rule_rejects_at_smtp_time(tmp_path):
    flt = rules(tmp_path, ENVELOPE_FILE)
    verdict = flt.check_envelope("203.0.113.9", "x", None, None)
    assert verdict is not None and verdict.action is Action.REJECT
    assert verdict.reason == "network blocked by policy" and verdict.rules == ("bad-net",)
    assert flt.check_envelope("2001:db8:bad::1", "x", "a@b.example", "bob@example.com").action is Action.REJECT


def test_envelope_accept_rule_and_unknown_facts(tmp_path):
    flt = rules(tmp_path, ENVELOPE_FILE)
    assert flt.check_envelope("192.0.2.1", "x", "a@b.example", "ceo@example.com") is None   # accepted first
    assert flt.check_envelope("198.51.100.1", "x", "a@b.example", None) is None             # no recipient yet
    verdict = flt.check_envelope("198.51.100.1", "x", "a@b.example", "ceo@example.com")
    assert verdict is not None and verdict.rules == ("no-ceo-mail-from-outside",)
    assert flt.check_envelope("10.1.1.1", "x", "a@b.example", "ceo@example.com") is None


def test_envelope_rule_after_content_rule_waits_for_data(tmp_path):
    flt = rules(tmp_path, ENVELOPE_FILE)
    assert flt.check_envelope("198.51.100.1", "x", "x@late.example", "bob@example.com") is None
    assert flt.check(msg(sender="x@late.example", client_ip="198.51.100.1")).action is Action.REJECT


# --- file errors and reload ------------------------------------------------------------------

@pytest.mark.parametrize("text, line, words", [
    ('[[rule]]\nname = "a"\naction = "reject"\n[rule.when]\nclient_ip = "1.2.3.4\n', 5, "line 5"),
    ('[[rule]]\nname = "a"\naction = "reject"\n[rule.when]\nhelo = "x"\n\n[[rule]]\nname = "b"\n'
     'action = "explode"\n[rule.when]\nhelo = "y"\n', 9, "unknown action 'explode'"),
    ('[[rule]]\nname = "a"\naction = "junk"\n[rule.when]\nbody_regex = "(unclosed"\n', 5, "bad regular expression"),
    ('[[rule]]\nname = "a"\naction = "reject"\n[rule.when]\nclient_ip = ["10.0.0.0/8", "300.1.1.1"]\n', 5, "300.1.1.1"),
    ('[[rule]]\nname = "a"\naction = "reject"\n[rule.when]\nhelo = "x"\n[[rule]]\nname = "a"\n'
     'action = "junk"\n[rule.when]\nhelo = "y"\n', 7, "duplicate name"),
    ('[[rule]]\nname = "a"\naction = "reject"\n', 2, "missing [rule.when]"),
    ('[[rule]]\nname = "a"\naction = "reject"\n[rule.when]\nhelo = "x"\nbody_kw = "y"\n', 6, "unknown condition 'body_kw'"),
    ('[[rule]]\nname = "a"\naction = "redirect"\n[rule.when]\nhelo = "x"\n', 3, "needs 'redirect_to'"),
    ('[[rule]]\nname = "a"\naction = "add_header"\nheaders = { "Bad Name" = "v" }\n[rule.when]\nhelo = "x"\n', 4, "bad header"),
    ('[[rule]]\nname = "a"\naction = "junk"\n[rule.when]\nsize_over = "lots"\n', 5, "byte count"),
    ('[[rule]]\nname = "a"\naction = "junk"\n[rule.when]\n', 4, "at least one condition"),
])
def test_broken_file_names_the_line(tmp_path, text, line, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    from mailpipe.filters.rules.tool import check_file
    errors = check_file(path)
    assert errors, "expected an error"
    assert errors[0].startswith(f"{path}:{line}: "), errors
    assert words in errors[0]
    with pytest.raises(RulesError):
        RulesFilter(path)


def test_reload_on_change_keeps_last_good_rules(tmp_path, caplog):
    path = tmp_path / "live.toml"
    path.write_text('[[rule]]\nname = "one"\naction = "discard"\n[rule.when]\nsender = "a.example"\n')
    clock = FakeClock()
    flt = RulesFilter(path, clock=clock, check_interval=5.0)
    assert flt.check(msg(sender="x@a.example")).action is Action.DISCARD

    path.write_text('[[rule]]\nname = "two"\naction = "hold"\n[rule.when]\nsender = "b.example"\n')
    os.utime(path, ns=(1, 10**18))
    assert flt.check(msg(sender="x@a.example")).action is Action.DISCARD      # not checked yet
    clock.advance(5.0)
    assert flt.check(msg(sender="x@b.example")).action is Action.HOLD
    assert flt.check(msg(sender="x@a.example")).action is Action.ACCEPT

    path.write_text('[[rule]]\nname = "three"\naction = "hold"\n[rule.when]\nsender = "c.example\n')
    os.utime(path, ns=(1, 2 * 10**18))
    with caplog.at_level(logging.ERROR, logger="mailpipe.filters.rules"):
        flt.reload_if_changed()
    assert f"{path}:5:" in caplog.text
    assert flt.check(msg(sender="x@b.example")).action is Action.HOLD           # last good rules kept
    path.unlink()
    flt.reload_if_changed()
    assert flt.check(msg(sender="x@b.example")).action is Action.HOLD


def test_explicit_reload_and_from_config(tmp_path):
    assert from_config(RulesConfig()) is None
    path = tmp_path / "r.toml"
    path.write_text('[[rule]]\nname = "x"\naction = "hold"\nenabled = false\n[rule.when]\nhelo = "h"\n')
    flt = from_config(RulesConfig(file=path, reload_interval=0))
    assert flt is not None and flt.check(msg(helo="h")).action is Action.ACCEPT
    path.write_text('[[rule]]\nname = "x"\naction = "hold"\n[rule.when]\nhelo = "h"\n')
    flt.reload()
    assert flt.check(msg(helo="h")).action is Action.HOLD


def test_body_text_skips_attached_files_but_reads_inline_named_parts(tmp_path):
    from email.message import EmailMessage
    attached = EmailMessage()
    attached.set_content("main body")
    attached.add_attachment("khuyến mãi in a file", filename="a.txt")
    inline = EmailMessage()
    inline.set_content("khuyến mãi inline", disposition="inline", filename="b.txt")
    flt = one_rule(tmp_path, 'body_keyword = "khuyến mãi"')
    assert not hits(flt, msg(raw=bytes(attached)))
    assert hits(flt, msg(raw=bytes(inline)))
    assert hits(one_rule(tmp_path, 'attachment_name = "b.txt"'), msg(raw=bytes(inline)))


def test_error_in_sub_table_names_its_line(tmp_path):
    path = tmp_path / "sub.toml"
    path.write_text('[[rule]]\nname = "a"\naction = "junk"\n[rule.when]\nhelo = "x"\n[rule.when.not]\n'
                    'client_ip = "10.0.0.0/8"\n[rule.when.header]\nname = "Subject"\nregex = "(bad"\n')
    from mailpipe.filters.rules.tool import check_file
    errors = check_file(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:10: ") and "bad regular expression" in errors[0]
    path.write_text(path.read_text().replace('"(bad"', '"ok"').replace('"10.0.0.0/8"', '"10.0.0.300/8"'))
    assert check_file(path)[0].startswith(f"{path}:7: ")
