"""``rules check`` / ``rules test`` helpers, and the example file shipped in docs/rules.md."""

from __future__ import annotations

import re
from pathlib import Path

from mailpipe.filters.rules.tool import check_file, explain
from tests.filters import rulemsgs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules.md"

RULES = '''
[[rule]]
name = "stamp"
action = "add_header"
headers = { "X-Checked" = "rules" }
[rule.when]
all = []

[[rule]]
name = "vn-promo"
action = "junk"
[rule.when]
body_keyword = "khuyến mãi"

[[rule]]
name = "bad-net"
action = "reject"
[rule.when]
client_ip = "203.0.113.0/24"
'''


def test_check_file_valid_and_invalid(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(RULES)
    assert check_file(good) == []
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES.replace('action = "reject"', 'action = "rejekt"'))
    errors = check_file(bad)
    assert len(errors) == 1 and errors[0].startswith(f"{bad}:17: ")
    assert check_file(tmp_path / "missing.toml")[0].startswith(f"{tmp_path / 'missing.toml'}:1: cannot read")


def test_explain_says_which_rules_matched_and_why(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(RULES)
    text = explain(path, rulemsgs.cp1258_qp(), client_ip="203.0.113.5", sender="shop@example.net",
                   recipients=["bob@example.com"])
    assert "MATCH stamp (line 2, action add_header): always" in text
    assert "MATCH vn-promo (line 9, action junk): body contains 'khuyến mãi'" in text
    assert "match bad-net" in text and "not reached" in text
    assert "result: junk by rule vn-promo" in text
    assert "add header X-Checked: rules" in text


def test_explain_smtp_time_answer(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(RULES.split("[[rule]]\nname = \"vn-promo\"")[0] + RULES.split("body_keyword = \"khuyến mãi\"\n")[1])
    text = explain(path, b"Subject: x\r\n\r\nhi\r\n", client_ip="203.0.113.5", recipients=["bob@example.com"])
    assert "SMTP time: reject for bob@example.com" in text
    assert "result: reject by rule bad-net" in text


def test_docs_examples_are_valid(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/rules.md has no toml examples"
    for number, block in enumerate(blocks):
        path = tmp_path / f"example{number}.toml"
        path.write_text(block, encoding="utf-8")
        assert check_file(path) == [], block
