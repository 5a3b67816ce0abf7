"""Evaluating rules: conditions against message facts, rules in order -> one ``Verdict``.

Owns: the meaning of every condition, the evaluation order (rules run top to
bottom; ``add_header`` rules add headers and go on; the first matching rule
with any other action ends the evaluation, ``accept`` included), the
SMTP-time subset (envelope-only rules), and the trace of which rule matched
and why (used by ``mailpipe rules test``).

A condition evaluates to ``None`` (no match) or a short text saying why it
matched. A missing fact (no client IP, no HELO) matches nothing.

Must not: parse files, do I/O or raise on any message.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from mailpipe.filters.rules import model
from mailpipe.filters.rules.mime import MessageFacts, extract
from mailpipe.filters.rules.model import Field, Rule, RuleSet
from mailpipe.filters.verdict import Action, Verdict

FILTER_NAME = "rules"
#: actions that may be answered during the SMTP dialogue (reject -> 5xx, tempfail -> 4xx)
SMTP_ACTIONS = frozenset({Action.REJECT, Action.TEMPFAIL})


@dataclass
class Facts:
    """Everything a condition may read; message facts are parsed lazily, once."""

    client_ip: str | None = None
    helo: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    raw: bytes | None = None

    @cached_property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            address = ipaddress.ip_address((self.client_ip or "").strip().strip("[]"))
        except ValueError:
            return None
        mapped = getattr(address, "ipv4_mapped", None)
        return mapped or address

    @cached_property
    def message(self) -> MessageFacts:
        return extract(self.raw or b"")


@dataclass(frozen=True)
class Match:
    rule: Rule
    why: str


@dataclass
class Outcome:
    verdict: Verdict
    matches: list[Match] = field(default_factory=list)


def _address_why(cond: model.AddressMatch, address: str) -> str | None:
    lowered = address.strip().lower().removeprefix("<").removesuffix(">")
    label = cond.field.value
    if lowered in cond.exact:
        return f"{label} is {lowered or '<>'}"
    domain = lowered.rpartition("@")[2] if "@" in lowered else None
    if domain is not None and domain in cond.domains:
        return f"{label} domain is {domain}"
    for glob in cond.globs:
        if fnmatch.fnmatchcase(lowered, glob):
            return f"{label} {lowered} matches {glob}"
    for regex in cond.regexes:
        if regex.search(address):
            return f"{label} {address} matches /{regex.pattern}/"
    return None


def _addresses(cond: model.AddressMatch, facts: Facts) -> str | None:
    if cond.field is Field.SENDER:
        return None if facts.sender is None else _address_why(cond, facts.sender)
    for recipient in facts.recipients:
        why = _address_why(cond, recipient)
        if why:
            return why
    return None


def _ip_why(cond: model.IpIn, facts: Facts) -> str | None:
    ip = facts.ip
    if ip is None:
        return None
    for network in cond.networks:
        if ip.version == network.version and ip in network:
            return f"client IP {ip} in {network}"
    return None


def _helo_why(cond: model.HeloMatch, facts: Facts) -> str | None:
    if facts.helo is None:
        return None
    helo = facts.helo.strip().lower()
    for glob in cond.globs:
        if fnmatch.fnmatchcase(helo, glob):
            return f"HELO {helo} matches {glob}"
    for regex in cond.regexes:
        if regex.search(facts.helo):
            return f"HELO {facts.helo} matches /{regex.pattern}/"
    return None


def _header_why(cond: model.HeaderMatch, facts: Facts) -> str | None:
    for value in facts.message.headers.get(cond.name, ()):
        if cond.regex.search(value):
            return f"header {cond.name} {value[:60]!r} matches /{cond.regex.pattern}/"
    return None


def _keyword_why(cond: model.BodyKeyword, facts: Facts) -> str | None:
    folded = facts.message.folded
    for word in cond.keywords:
        if word in folded:
            return f"body contains {word!r}"
    return None


def _body_regex_why(cond: model.BodyRegex, facts: Facts) -> str | None:
    for regex in cond.regexes:
        found = regex.search(facts.message.text)
        if found:
            return f"body matches /{regex.pattern}/ ({found.group(0)[:40]!r})"
    return None


def _attachment_why(cond: model.AttachmentMatch, facts: Facts) -> str | None:
    for name in facts.message.attachments:
        lowered = name.lower()
        if any(lowered.endswith(ext) for ext in cond.extensions):
            return f"attachment {name!r} has extension {lowered.rpartition('.')[2]}"
        for glob in cond.globs:
            if fnmatch.fnmatchcase(lowered, glob):
                return f"attachment {name!r} matches {glob}"
    return None


def _size_why(cond: model.SizeMatch, facts: Facts) -> str | None:
    size = len(facts.raw or b"")
    if cond.over is not None and size > cond.over:
        return f"size {size} > {cond.over}"
    if cond.under is not None and size < cond.under:
        return f"size {size} < {cond.under}"
    return None


def _all_why(cond: model.AllOf, facts: Facts) -> str | None:
    reasons = []
    for item in cond.items:
        why = evaluate(item, facts)
        if why is None:
            return None
        reasons.append(why)
    return " and ".join(reasons) if reasons else "always"


def _any_why(cond: model.AnyOf, facts: Facts) -> str | None:
    for item in cond.items:
        why = evaluate(item, facts)
        if why is not None:
            return why
    return None


def _not_why(cond: model.NotOf, facts: Facts) -> str | None:
    if evaluate(cond.item, facts) is not None:
        return None
    return "no " + "/".join(sorted(f.value for f in cond.item.fields)) + " match under 'not'"


#: condition type -> why it matches (each function takes its own condition type)
_EVALUATORS: dict[type, Callable[[Any, Facts], str | None]] = {
    model.IpIn: _ip_why, model.AddressMatch: _addresses, model.HeloMatch: _helo_why,
    model.HeaderMatch: _header_why, model.BodyKeyword: _keyword_why, model.BodyRegex: _body_regex_why,
    model.AttachmentMatch: _attachment_why, model.SizeMatch: _size_why,
    model.AllOf: _all_why, model.AnyOf: _any_why, model.NotOf: _not_why,
}


def evaluate(cond: model.Condition, facts: Facts) -> str | None:
    """Why ``cond`` matches ``facts``, or None when it does not."""
    return _EVALUATORS[type(cond)](cond, facts)


def run(ruleset: RuleSet, facts: Facts) -> Outcome:
    """All rules in order; add_header accumulates, the first other matching action ends it."""
    matches: list[Match] = []
    headers: list[tuple[str, str]] = []
    for rule in ruleset.rules:
        why = evaluate(rule.when, facts)
        if why is None:
            continue
        matches.append(Match(rule, why))
        headers.extend(rule.headers)
        if rule.terminal:
            return Outcome(_verdict(rule, why, headers, matches), matches)
    action = Action.ADD_HEADER if headers else Action.ACCEPT
    reason = "no rule matched" if not matches else "headers added"
    return Outcome(Verdict(action, FILTER_NAME, reason, tuple(headers),
                           rules=tuple(m.rule.name for m in matches)), matches)


def _verdict(rule: Rule, why: str, headers: list[tuple[str, str]], matches: list[Match]) -> Verdict:
    reason = rule.reason or f"rule {rule.name}: {why}"
    return Verdict(rule.action, FILTER_NAME, reason, tuple(headers), redirect_to=rule.redirect_to,
                   rules=tuple(m.rule.name for m in matches))


def run_envelope(ruleset: RuleSet, facts: Facts, available: frozenset[Field]) -> Verdict | None:
    """The SMTP-time answer: REJECT/TEMPFAIL from envelope-only rules, else None.

    Stops (None) at the first rule that could end the evaluation but cannot be
    decided yet (it reads the message, or a fact not known at this point), so
    the SMTP-time answer never contradicts the one after DATA.
    """
    for rule in ruleset.rules:
        decidable = rule.when.fields <= available
        if not decidable:
            if rule.terminal:
                return None
            continue
        why = evaluate(rule.when, facts)
        if why is None or not rule.terminal:
            continue
        if rule.action in SMTP_ACTIONS:
            return _verdict(rule, why, [], [Match(rule, why)])
        return None
    return None
