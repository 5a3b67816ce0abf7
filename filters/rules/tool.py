"""Operator tooling behind ``mailpipe rules check FILE`` and ``mailpipe rules test FILE MSG.eml``.

Owns: the text these commands print. ``check_file`` returns error lines
(``FILE:LINE: message``; empty when valid); ``explain`` runs every rule
against a message and says which matched, why, the SMTP-time answer for the
envelope, and the resulting action - without sending or storing anything.

Must not: print, exit or parse command lines (the CLI does that).
"""

from __future__ import annotations

from pathlib import Path

from mailpipe.filters.rules.engine import Facts, evaluate, run, run_envelope
from mailpipe.filters.rules.model import ENVELOPE_FIELDS, Field, RuleSet
from mailpipe.filters.rules.parser import RulesError, parse_file


def check_file(path: Path | str) -> list[str]:
    """``[]`` when the file is valid, else one ``FILE:LINE: message`` per problem."""
    try:
        parse_file(path)
    except RulesError as exc:
        return list(exc.messages)
    return []


def _rule_lines(ruleset: RuleSet, facts: Facts) -> list[str]:
    lines, decided = [], False
    for rule in ruleset.rules:
        why = evaluate(rule.when, facts)
        mark = "-    " if why is None else ("match" if decided else "MATCH")
        detail = "" if why is None else f": {why}" + (" (not reached: an earlier rule decided)" if decided else "")
        lines.append(f"  {mark} {rule.name} (line {rule.line}, action {rule.action.value}){detail}")
        decided = decided or (why is not None and rule.terminal)
    return lines


def _envelope_line(ruleset: RuleSet, client_ip: str | None, helo: str | None, sender: str | None,
                   recipients: tuple[str, ...]) -> str:
    known = {Field.CLIENT_IP: client_ip, Field.HELO: helo, Field.SENDER: sender}
    available = frozenset(f for f, v in known.items() if v is not None)
    for recipient in recipients or (None,):
        fields = available | ({Field.RECIPIENT} if recipient is not None else set())
        facts = Facts(client_ip, helo, sender, (recipient,) if recipient is not None else ())
        verdict = run_envelope(ruleset, facts, frozenset(fields) & ENVELOPE_FIELDS)
        if verdict is not None:
            target = f" for {recipient}" if recipient else ""
            return f"SMTP time: {verdict.action.value}{target} ({verdict.reason})"
    return "SMTP time: no envelope rule decides; the message would be accepted for the pipeline"


def explain(path: Path | str, raw: bytes, client_ip: str | None = None, helo: str | None = None,
            sender: str | None = None, recipients: tuple[str, ...] | list[str] = ()) -> str:
    """Which rules matched ``raw`` with this envelope, why, and the resulting action."""
    ruleset = parse_file(path)
    facts = Facts(client_ip, helo, sender, tuple(recipients), raw)
    outcome = run(ruleset, facts)
    verdict = outcome.verdict
    lines = [f"rules file {path}: {len(ruleset.rules)} rules", *_rule_lines(ruleset, facts),
             _envelope_line(ruleset, client_ip, helo, sender, tuple(recipients))]
    decided = outcome.matches[-1].rule.name if outcome.matches and outcome.matches[-1].rule.terminal else None
    lines.append(f"result: {verdict.action.value}" + (f" by rule {decided}" if decided else "")
                 + f" ({verdict.reason})")
    lines.extend(f"  add header {name}: {value}" for name, value in verdict.headers)
    if verdict.redirect_to:
        lines.append("  redirect to " + ", ".join(verdict.redirect_to))
    return "\n".join(lines) + "\n"
