"""The rules file parser: TOML text -> ``RuleSet``, or every error with its line.

Owns: the file format (see docs/rules.md): ``[[rule]]`` tables with
``name``, ``action``, optional ``reason``/``headers``/``redirect_to``/``enabled``
and a ``[rule.when]`` condition table. Keys inside one condition table are
combined with *all*; ``all``/``any`` take lists of tables and ``not`` one table.
Values that take several patterns accept a string or a list of strings.

Errors: ``RulesError.messages`` is a list of ``"FILE:LINE: message"``. TOML
syntax errors carry tomllib's line; other errors the line of the offending key
inside its ``[[rule]]`` (or of the ``[[rule]]`` header).

Must not: read files other than the one given, evaluate rules, or raise
anything but ``RulesError`` on any input.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from mailpipe.core.errors import ConfigError
from mailpipe.filters.rules import conditions
from mailpipe.filters.rules.model import RULE_ACTIONS, Rule, RuleSet
from mailpipe.filters.verdict import Action

_TOML_LINE = re.compile(r"at line (\d+)")
_RULE_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")          # RFC 5322 ftext
RULE_KEYS = {"name", "action", "reason", "headers", "redirect_to", "enabled", "when"}
#: cap on rules per file (bounds every loop over them)
MAX_RULES = 10000


class RulesError(ConfigError):
    """The rules file is invalid; ``messages`` holds one ``FILE:LINE: text`` per problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class _Lines:
    """Finds line numbers for keys: TOML parsers do not keep them."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.rule_starts = [i + 1 for i, line in enumerate(self.lines) if _RULE_HEADER.match(line)]

    def of(self, index: int, key: str | None = None) -> int:
        if index >= len(self.rule_starts):
            return 1
        start = self.rule_starts[index]
        end = self.rule_starts[index + 1] if index + 1 < len(self.rule_starts) else len(self.lines) + 1
        if key:
            name = re.escape(key)
            pattern = re.compile(rf"^\s*(?:{name}\s*=|\[\s*rule\.(?:[\w.]+\.)?{name}\s*\])|[{{,]\s*{name}\s*=")
            for number in range(start, end):
                if pattern.search(self.lines[number - 1]):
                    return number
        return start


def parse_text(text: str, source: str = "<rules>") -> RuleSet:
    """Parse rules text; RulesError lists every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        raise RulesError([f"{source}:{found.group(1) if found else 1}: {exc}"]) from None
    except RecursionError:
        raise RulesError([f"{source}:1: nested too deeply"]) from None
    lines = _Lines(text)
    errors: list[str] = []
    extra = sorted(set(data) - {"rule"})
    if extra:
        errors.append(f"{source}:1: unknown top-level key(s) {', '.join(extra)} (expected [[rule]] tables)")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or len(raw_rules) > MAX_RULES:
        raise RulesError(errors + [f"{source}:1: 'rule' must be up to {MAX_RULES} [[rule]] tables"])
    rules = _rules(raw_rules, lines, source, errors)
    if errors:
        raise RulesError(errors)
    return RuleSet(tuple(rules), source)


def _rules(raw_rules: list[Any], lines: _Lines, source: str, errors: list[str]) -> list[Rule]:
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        try:
            rule = _rule(raw, lines.of(index))
        except conditions.RuleSyntax as exc:
            errors.append(f"{source}:{lines.of(index, exc.key)}: rule #{index + 1}: {exc}")
            continue
        if rule is None:
            continue
        if rule.name in seen:
            errors.append(f"{source}:{lines.of(index, 'name')}: rule #{index + 1}: duplicate name {rule.name!r}")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def _rule(raw: Any, line: int) -> Rule | None:
    if not isinstance(raw, dict):
        raise conditions.RuleSyntax("each rule must be a table")
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise conditions.RuleSyntax(f"unknown key {unknown[0]!r}", unknown[0])
    name = conditions.required_string(raw, "name")
    action = _action(raw)
    if "when" not in raw:
        raise conditions.RuleSyntax("missing [rule.when] conditions", "name")
    when = conditions.build(raw["when"], "when")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise conditions.RuleSyntax("'enabled' must be true or false", "enabled")
    headers = _headers(raw, action)
    redirect = _redirect(raw, action)
    rule = Rule(name, action, when, line, conditions.string(raw, "reason") or "", headers, redirect)
    return rule if enabled else None


def _action(raw: dict[str, Any]) -> Action:
    value = conditions.string(raw, "action", required=True)
    if value not in {a.value for a in RULE_ACTIONS}:
        choices = ", ".join(sorted(a.value for a in RULE_ACTIONS))
        raise conditions.RuleSyntax(f"unknown action {value!r} (one of: {choices})", "action")
    return Action(value)


def _headers(raw: dict[str, Any], action: Action) -> tuple[tuple[str, str], ...]:
    value = raw.get("headers", {})
    if not isinstance(value, dict):
        raise conditions.RuleSyntax("'headers' must be a table of Name = \"value\"", "headers")
    for name, text in value.items():
        if not _HEADER_NAME.match(name) or not isinstance(text, str) or "\r" in text or "\n" in text:
            raise conditions.RuleSyntax(f"bad header {name!r} (name: printable, no ':'; value: one line)", "headers")
    if action in (Action.ADD_HEADER, Action.TAG) and not value:
        raise conditions.RuleSyntax(f"action {action.value!r} needs 'headers'", "action")
    return tuple(value.items())


def _redirect(raw: dict[str, Any], action: Action) -> tuple[str, ...]:
    targets = conditions.strings(raw, "redirect_to") if "redirect_to" in raw else ()
    if action is Action.REDIRECT and not targets:
        raise conditions.RuleSyntax("action 'redirect' needs 'redirect_to'", "action")
    for target in targets:
        if target.count("@") != 1 or any(c.isspace() or c in "<>" for c in target):
            raise conditions.RuleSyntax(f"redirect_to {target!r} is not an address", "redirect_to")
    return targets


def parse_file(path: Path | str) -> RuleSet:
    """Read and parse a rules file; RulesError (with the file name) when unreadable or invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([f"{path}:1: cannot read: {type(exc).__name__}: {exc}"]) from None
    return parse_text(text, str(path))
