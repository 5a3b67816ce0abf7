"""Building condition objects from one ``[rule.when]`` table (and its nested all/any/not).

Owns: the condition keys of the file format, their value checks and
normalisation (lower-case globs, compiled case-insensitive regexes, NFC
case-folded keywords, parsed networks, sizes with K/M/G suffixes).

Must not: know about rules, files or line numbers - errors are
``RuleSyntax(message, key)`` and the parser adds the line.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from mailpipe.filters.rules import model
from mailpipe.filters.rules.mime import fold
from mailpipe.filters.rules.model import Field

MAX_DEPTH = 16
MAX_PATTERN = 2000
_GLOB_CHARS = set("*?[")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


class RuleSyntax(ValueError):
    """One problem in a rule; ``key`` lets the parser find its line."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def string(table: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = table.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise RuleSyntax(f"{key!r} must be a non-empty string", key)
    return value


def required_string(table: dict[str, Any], key: str) -> str:
    """``table[key]``, which must be a non-empty string."""
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleSyntax(f"{key!r} must be a non-empty string", key)
    return value


def strings(table: dict[str, Any], key: str) -> tuple[str, ...]:
    value = table[key]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise RuleSyntax(f"{key!r} must be a string or a non-empty list of strings", key)
    if any(len(item) > MAX_PATTERN for item in items):
        raise RuleSyntax(f"{key!r}: pattern longer than {MAX_PATTERN} characters", key)
    return tuple(items)


def _regexes(table: dict[str, Any], key: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in strings(table, key):
        try:
            compiled.append(re.compile(pattern, re.I))
        except (re.error, RecursionError, OverflowError) as exc:
            raise RuleSyntax(f"{key!r}: bad regular expression {pattern!r}: {exc}", key) from None
    return tuple(compiled)


def _ip(table: dict[str, Any], key: str) -> model.IpIn:
    networks = []
    for item in strings(table, key):
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise RuleSyntax(f"{key!r}: {item!r} is not an IP address or CIDR network", key) from None
    return model.IpIn(tuple(networks))


def _address(field: Field) -> Callable[[dict[str, Any], str], model.AddressMatch]:
    def build(table: dict[str, Any], key: str) -> model.AddressMatch:
        exact, domains, globs = set(), set(), []
        for item in (i.strip().lower() for i in strings(table, key)):
            if item in ("<>", ""):
                exact.add("")
            elif _GLOB_CHARS & set(item):
                globs.append(item)
            elif "@" in item:
                exact.add(item.removeprefix("<").removesuffix(">"))
            else:
                domains.add(item.removeprefix("@"))
        return model.AddressMatch(field, frozenset(exact), frozenset(domains), tuple(globs))
    return build


def _address_regex(field: Field) -> Callable[[dict[str, Any], str], model.AddressMatch]:
    return lambda table, key: model.AddressMatch(field, regexes=_regexes(table, key))


def _headers(table: dict[str, Any], key: str) -> model.Condition:
    value = table[key]
    items = value if isinstance(value, list) else [value]
    built = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"name", "regex"}:
            raise RuleSyntax(f"{key!r} must be {{ name = \"...\", regex = \"...\" }} (or a list of them)", key)
        name = required_string(item, "name")
        built.append(model.HeaderMatch(name.strip().lower(), _regexes(item, "regex")[0]))
    return built[0] if len(built) == 1 else model.AnyOf(tuple(built))


def _keywords(table: dict[str, Any], key: str) -> model.BodyKeyword:
    words = tuple(fold(word) for word in strings(table, key))
    if not all(words):
        raise RuleSyntax(f"{key!r}: empty keyword", key)
    return model.BodyKeyword(words)


def _extensions(table: dict[str, Any], key: str) -> model.AttachmentMatch:
    exts = tuple("." + item.strip().lower().lstrip(".") for item in strings(table, key))
    return model.AttachmentMatch(extensions=exts)


def _size(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    found = _SIZE.match(value) if isinstance(value, str) else None
    if not found:
        raise RuleSyntax(f"{key!r} must be a byte count like 100000 or \"512K\", \"10M\"", key)
    return int(found.group(1)) * _UNITS[found.group(2).lower()]


LEAVES: dict[str, Callable[[dict[str, Any], str], model.Condition]] = {
    "client_ip": _ip,
    "helo": lambda t, k: model.HeloMatch(globs=tuple(i.lower() for i in strings(t, k))),
    "helo_regex": lambda t, k: model.HeloMatch(regexes=_regexes(t, k)),
    "sender": _address(Field.SENDER),
    "sender_regex": _address_regex(Field.SENDER),
    "recipient": _address(Field.RECIPIENT),
    "recipient_regex": _address_regex(Field.RECIPIENT),
    "header": _headers,
    "body_keyword": _keywords,
    "body_regex": lambda t, k: model.BodyRegex(_regexes(t, k)),
    "attachment_name": lambda t, k: model.AttachmentMatch(globs=tuple(i.lower() for i in strings(t, k))),
    "attachment_ext": _extensions,
    "size_over": lambda t, k: model.SizeMatch(over=_size(t[k], k)),
    "size_under": lambda t, k: model.SizeMatch(under=_size(t[k], k)),
}
COMBINERS = ("all", "any", "not")


def build(table: Any, key: str, depth: int = 0) -> model.Condition:
    """One condition table -> a condition (several keys are combined with all)."""
    if depth > MAX_DEPTH:
        raise RuleSyntax(f"conditions nested deeper than {MAX_DEPTH}", key)
    if not isinstance(table, dict) or not table:
        raise RuleSyntax(f"{key!r} must be a table with at least one condition (use all = [] to match every message)", key)
    items = [_one(table, name, depth) for name in table]
    return items[0] if len(items) == 1 else model.AllOf(tuple(items))


def _one(table: dict[str, Any], name: str, depth: int) -> model.Condition:
    if name in LEAVES:
        return LEAVES[name](table, name)
    if name == "not":
        return model.NotOf(build(table[name], name, depth + 1))
    if name in ("all", "any"):
        value = table[name]
        if not isinstance(value, list):
            raise RuleSyntax(f"{name!r} must be a list of condition tables", name)
        items = tuple(build(item, name, depth + 1) for item in value)
        return model.AllOf(items) if name == "all" else model.AnyOf(items)
    known = ", ".join(sorted([*LEAVES, *COMBINERS]))
    raise RuleSyntax(f"unknown condition {name!r} (known: {known})", name)
