"""The SMTP command-line grammar (RFC 5321 4.1, RFC 6531 for UTF-8). Pure, sans-I/O.

Owns: turning one command line (bytes, without its line ending) into a
``Command`` or a reply string from ``ingress.replies``. ``parse_command``
never raises: any input either parses or yields a 4xx/5xx reply.

Must not: know about sessions, state, policy or sockets. Whether a verb is
allowed now, or a non-ASCII address is allowed in this transaction, is the
state machine's business (``ingress.protocol``).

Leniency (stated, deliberate): verbs are case-insensitive; one space is
tolerated after ``FROM:``/``TO:``; a source route (A-d-l) is accepted and
ignored, as RFC 5321 4.1.1.3 asks, so ``<@local:user@foreign>`` means
``user@foreign``. Trailing dots in domains are a syntax error.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mailpipe.ingress import replies


class Verb(enum.Enum):
    HELO = "HELO"
    EHLO = "EHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    SEND = "SEND"
    SOML = "SOML"
    SAML = "SAML"
    TURN = "TURN"
    BDAT = "BDAT"


OBSOLETE_VERBS = frozenset({Verb.SEND, Verb.SOML, Verb.SAML, Verb.TURN})
NO_ARGUMENT_VERBS = frozenset({Verb.DATA, Verb.RSET, Verb.QUIT, Verb.STARTTLS})


@dataclass(frozen=True)
class Command:
    verb: Verb
    argument: str = ""                                  #: text after the verb (HELO name, AUTH args...)
    address: str | None = None                          #: MAIL/RCPT mailbox ("" = null sender)
    params: tuple[tuple[str, str | None], ...] = ()     #: ESMTP parameters, keywords upper-cased
    chunk_size: int = 0                                 #: BDAT: octets that follow the command line
    last: bool = False                                  #: BDAT ... LAST


# UTF8-non-ascii (RFC 6531 3.3) is any decoded character above U+007F.
_U = "\u0080-\U0010ffff"

# atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/" /
#         "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"        (RFC 5322 3.2.3)
# atext =/ UTF8-non-ascii                                              (RFC 6531 3.3)
_ATEXT = rf"[A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~{_U}]"
# Dot-string = Atom *("."  Atom) ;  Atom = 1*atext
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# Quoted-string = DQUOTE *QcontentSMTP DQUOTE
# QcontentSMTP = qtextSMTP / quoted-pairSMTP
# qtextSMTP = %d32-33 / %d35-91 / %d93-126 (/ UTF8-non-ascii) ; quoted-pairSMTP = %d92 %d32-126
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_U}]|\\[\x20-\x7e])*"'
# Local-part = Dot-string / Quoted-string
_LOCAL = rf"(?:{_DOT_STRING}|{_QUOTED})"
# sub-domain = Let-dig [Ldh-str] ; Let-dig = ALPHA / DIGIT ; Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
# sub-domain =/ U-label                                                (RFC 6531 3.3)
_SUB = rf"[A-Za-z0-9{_U}](?:[A-Za-z0-9\-{_U}]*[A-Za-z0-9{_U}])?"
# Domain = sub-domain *("." sub-domain)
_DOMAIN = rf"{_SUB}(?:\.{_SUB})*"
# address-literal = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]"
# General-address-literal = Standardized-tag ":" 1*dcontent ; dcontent = %d33-90 / %d94-126
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
# Mailbox = Local-part "@" ( Domain / address-literal )
_MAILBOX = rf"{_LOCAL}@(?:{_DOMAIN}|{_LITERAL})"
# A-d-l = At-domain *( "," At-domain ) ; At-domain = "@" Domain
_ADL = rf"@{_DOMAIN}(?:,@{_DOMAIN})*"
# Path = "<" [ A-d-l ":" ] Mailbox ">"
PATH_RE = re.compile(rf"<(?:{_ADL}:)?(?P<mailbox>{_MAILBOX})>")
# Reverse-path = Path / "<>"
NULL_PATH = "<>"
# esmtp-param = esmtp-keyword ["=" esmtp-value]
# esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
# esmtp-value = 1*(%d33-60 / %d62-126) (/ UTF8-non-ascii, RFC 6531 3.3)
PARAM_RE = re.compile(rf"(?P<key>[A-Za-z0-9][A-Za-z0-9\-]*)(?:=(?P<value>[\x21-\x3c\x3e-\x7e{_U}]+))?")
# bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF ; chunk-size = 1*DIGIT ; end-marker = "LAST"
#                                                                       (RFC 3030 4)
BDAT_RE = re.compile(r"(?P<size>[0-9]{1,15})(?: (?P<last>[Ll][Aa][Ss][Tt]))?")
# Rcpt special cases: "<Postmaster@" Domain ">" / "<Postmaster>"
POSTMASTER = "<postmaster>"

_VERBS = {v.value: v for v in Verb}


def parse_command(line: bytes) -> Command | str:
    """One command line (no CRLF) -> ``Command``, or a reply string for a bad line."""
    if b"\x00" in line or b"\r" in line or b"\n" in line:
        return replies.BAD_BYTES
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return replies.BAD_BYTES
    word, _, rest = text.partition(" ")
    verb = _VERBS.get(word.upper())
    if verb is None:
        return replies.UNKNOWN_COMMAND
    if not text.isascii() and verb not in (Verb.MAIL, Verb.RCPT):
        return replies.BAD_BYTES
    return _parse_arguments(verb, rest)


def _parse_arguments(verb: Verb, rest: str) -> Command | str:
    if verb in NO_ARGUMENT_VERBS:
        return Command(verb) if not rest.strip() else replies.SYNTAX_NO_ARGS
    if verb in (Verb.HELO, Verb.EHLO):
        name = rest.strip()
        if not name or any(not c.isprintable() for c in name):
            return replies.SYNTAX_HELO
        return Command(verb, argument=name)
    if verb is Verb.MAIL:
        return _parse_path(verb, rest, "FROM:", allow_null=True)
    if verb is Verb.RCPT:
        return _parse_path(verb, rest, "TO:", allow_null=False)
    if verb is Verb.BDAT:
        match = BDAT_RE.fullmatch(rest)
        if match is None:
            return replies.SYNTAX_BDAT
        return Command(verb, chunk_size=int(match.group("size")), last=match.group("last") is not None)
    return Command(verb, argument=rest.strip())


def _parse_path(verb: Verb, rest: str, prefix: str, *, allow_null: bool) -> Command | str:
    syntax = replies.SYNTAX_MAIL if verb is Verb.MAIL else replies.SYNTAX_RCPT
    if rest[:len(prefix)].upper() != prefix:
        return syntax
    rest = rest[len(prefix):]
    if rest.startswith(" "):
        rest = rest[1:]
    address, after = _path_address(rest, allow_null=allow_null)
    if address is None or (after and not after.startswith(" ")):
        return replies.BAD_SENDER_SYNTAX if verb is Verb.MAIL else replies.BAD_ADDRESS
    params = parse_params(after[1:])
    if isinstance(params, str):
        return params
    return Command(verb, address=address, params=params)


def _path_address(text: str, *, allow_null: bool) -> tuple[str | None, str]:
    """(mailbox, rest of the line) for the path at the start of `text`; mailbox None if bad."""
    if text.startswith(NULL_PATH):
        return ("" if allow_null else None), text[len(NULL_PATH):]
    if not allow_null and text[:len(POSTMASTER)].lower() == POSTMASTER:
        return "postmaster", text[len(POSTMASTER):]
    match = PATH_RE.match(text)
    if match is None or len(match.group("mailbox")) > 320:
        return None, ""
    return match.group("mailbox"), text[match.end():]


def parse_params(text: str) -> tuple[tuple[str, str | None], ...] | str:
    """``Mail-parameters`` / ``Rcpt-parameters``: SP-separated esmtp-params."""
    if not text:
        return ()
    params = []
    for item in text.split(" "):
        match = PARAM_RE.fullmatch(item)
        if match is None:
            return replies.BAD_PARAM_VALUE
        params.append((match.group("key").upper(), match.group("value")))
    return tuple(params)


def is_address_literal(address: str) -> bool:
    return address.rpartition("@")[2].startswith("[")
