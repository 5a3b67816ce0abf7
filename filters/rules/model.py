"""The rules model: frozen dataclasses for rules and their condition tree.

Owns: what a parsed rules file *is* - ``RuleSet`` of ``Rule`` objects, each
with a condition tree of ``AllOf`` / ``AnyOf`` / ``NotOf`` over leaf
conditions - and which message facts (``Field``) each condition reads.

Must not: parse TOML (``parser``), read messages (``mime``) or evaluate
(``engine``). Patterns arrive here already compiled and normalised.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from mailpipe.filters.verdict import Action

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Field(StrEnum):
    """The facts a condition can read. The first four are known during the SMTP dialogue."""

    CLIENT_IP = "client_ip"
    HELO = "helo"
    SENDER = "sender"
    RECIPIENT = "recipient"
    HEADER = "header"
    BODY = "body"
    ATTACHMENT = "attachment"
    SIZE = "size"


ENVELOPE_FIELDS = frozenset({Field.CLIENT_IP, Field.HELO, Field.SENDER, Field.RECIPIENT})
#: rule actions: the Verdict actions a rule may take (tempfail included for greylist-like rules)
RULE_ACTIONS = frozenset(Action)


@dataclass(frozen=True)
class IpIn:
    networks: tuple[IPNetwork, ...]
    fields = frozenset({Field.CLIENT_IP})


@dataclass(frozen=True)
class AddressMatch:
    """An envelope address (sender or recipient) against exact addresses, domains, globs or regexes."""

    field: Field                       #: SENDER or RECIPIENT
    exact: frozenset[str] = frozenset()       #: lower-case addresses ("" = null sender)
    domains: frozenset[str] = frozenset()     #: lower-case domains, exact match of the domain part
    globs: tuple[str, ...] = ()               #: lower-case fnmatch patterns on the whole address
    regexes: tuple[re.Pattern[str], ...] = ()

    @property
    def fields(self) -> frozenset[Field]:
        return frozenset({self.field})


@dataclass(frozen=True)
class HeloMatch:
    globs: tuple[str, ...] = ()
    regexes: tuple[re.Pattern[str], ...] = ()
    fields = frozenset({Field.HELO})


@dataclass(frozen=True)
class HeaderMatch:
    name: str                          #: lower-case header name
    regex: re.Pattern[str]
    fields = frozenset({Field.HEADER})


@dataclass(frozen=True)
class BodyKeyword:
    keywords: tuple[str, ...]          #: NFC, case-folded, whitespace collapsed
    fields = frozenset({Field.BODY})


@dataclass(frozen=True)
class BodyRegex:
    regexes: tuple[re.Pattern[str], ...]
    fields = frozenset({Field.BODY})


@dataclass(frozen=True)
class AttachmentMatch:
    globs: tuple[str, ...] = ()        #: lower-case fnmatch patterns on the file name
    extensions: tuple[str, ...] = ()   #: lower-case, with the leading dot
    fields = frozenset({Field.ATTACHMENT})


@dataclass(frozen=True)
class SizeMatch:
    over: int | None = None            #: matches when size > over
    under: int | None = None           #: matches when size < under
    fields = frozenset({Field.SIZE})


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]

    @property
    def fields(self) -> frozenset[Field]:
        return frozenset().union(*(item.fields for item in self.items))


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]

    @property
    def fields(self) -> frozenset[Field]:
        return frozenset().union(*(item.fields for item in self.items))


@dataclass(frozen=True)
class NotOf:
    item: Condition

    @property
    def fields(self) -> frozenset[Field]:
        return self.item.fields


Condition = (IpIn | AddressMatch | HeloMatch | HeaderMatch | BodyKeyword | BodyRegex
             | AttachmentMatch | SizeMatch | AllOf | AnyOf | NotOf)


@dataclass(frozen=True)
class Rule:
    name: str
    action: Action
    when: Condition
    line: int = 0                      #: line of its ``[[rule]]`` in the file
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    redirect_to: tuple[str, ...] = ()

    @property
    def envelope_only(self) -> bool:
        return self.when.fields <= ENVELOPE_FIELDS

    @property
    def terminal(self) -> bool:
        """Every action but add_header ends the evaluation (accept included)."""
        return self.action is not Action.ADD_HEADER


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    source: str = ""                   #: file name, for messages
