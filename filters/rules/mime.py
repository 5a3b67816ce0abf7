"""Message facts for rules: decoded headers, decoded body text, attachment names.

Owns: turning raw bytes into what body/header/attachment conditions read -
transfer encodings (base64, quoted-printable) undone, every charset decoded
(``core.mimetext``, the policy IMAP SEARCH shares), HTML tags
dropped, text Unicode NFC-normalised (so precomposed and decomposed Vietnamese
compare equal) and, for keywords, case-folded with whitespace collapsed.

Most mail is one text/plain part: for it (``_plain_body``: a CRLF header
section the fast path can read exactly as the email package would, no other
Content-* field than Content-Type and Content-Transfer-Encoding) the body is
decoded without building a message tree, and the headers are parsed only when
a header condition asks for them. Anything else takes the email package's
parser; a property test holds the two paths to the same facts.

Must not: raise on any input - a broken message yields what could be read.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
import unicodedata
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser

from mailpipe.core.mimetext import decode_text, undo_transfer_encoding

#: decoded text kept per message for body conditions
MAX_TEXT = 2 * 1024 * 1024
_TAGS = re.compile(r"<(?:script|style)\b.*?</(?:script|style)\s*>|<[^>]*>", re.I | re.S)


def normalise(text: str) -> str:
    """NFC form: what body regexes and header regexes see."""
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """Keyword form: NFC, case-folded, runs of whitespace as one space."""
    if text.isascii():                  # most mail: no normalisation needed, lower() == casefold()
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFC", normalise(text).casefold()).split())


@dataclass
class MessageFacts:
    text: str = ""                                                 #: NFC body text of all text parts
    attachments: list[str] = field(default_factory=list)           #: file names as sent
    raw: bytes | None = field(default=None, repr=False)           #: parsed for headers on first use

    @property
    def headers(self) -> dict[str, list[str]]:
        """Lower-case field name -> decoded values, in message order."""
        cached = self.__dict__.get("_headers")
        if cached is None:
            cached = self.__dict__["_headers"] = {}
            if self.raw is not None:
                try:
                    _add_headers(BytesHeaderParser(policy=email.policy.compat32).parsebytes(self.raw), cached)
                except Exception:         # as in extract(): never crash a stage on input
                    pass
        return cached

    @property
    def folded(self) -> str:
        cached = self.__dict__.get("_folded")
        if cached is None:
            cached = self.__dict__["_folded"] = fold(self.text)
        return cached


def decode_header_value(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, TypeError, AssertionError):
        return value


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        return ""
    if not isinstance(payload, bytes):
        return ""
    text = decode_text(payload, part.get_content_charset())
    if part.get_content_subtype() == "html":
        text = html.unescape(_TAGS.sub(" ", text))
    return text


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, TypeError, LookupError, UnicodeError, AssertionError):
        return None
    return decode_header_value(name) if name else None


def _collect(msg: Message, facts: MessageFacts) -> None:
    texts: list[str] = []
    size = 0
    for count, part in enumerate(msg.walk()):
        if count > 1000 or part.is_multipart():
            continue
        name = _filename(part)
        if name:
            facts.attachments.append(name)
        if part.get_content_disposition() == "attachment":
            continue
        if part.get_content_maintype() == "text" and size < MAX_TEXT:
            text = _part_text(part)
            texts.append(text)
            size += len(text)
    facts.text = normalise("\n".join(texts)[:MAX_TEXT])


def _add_headers(msg: Message, headers: dict[str, list[str]]) -> None:
    for name, value in msg.items():
        headers.setdefault(name.lower(), []).append(normalise(decode_header_value(str(value))))


_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
#: ``text/plain`` with simple parameters (token or quoted value without blanks, escapes or 8-bit)
_PLAIN = re.compile(rb'[ \t]*text/plain[ \t]*'
                    rb'((?:;[ \t]*[a-z0-9-]+=(?:"[^"\\\x00-\x20\x7f-\xff]*"|[a-z0-9._:-]+)[ \t]*)*);?[ \t]*', re.I)
_PARAM = re.compile(rb'([a-z0-9-]+)="?([^";\s]*)', re.I)


def _plain_body(raw: bytes) -> tuple[bytes, str | None] | None:
    """(decoded body, charset) of a single text/plain part whose header section is plain
    enough to read without the email package, else None (the full parser decides)."""
    end = raw.find(b"\r\n\r\n")
    if end <= 0:
        return None
    head = raw[:end]
    if b"\r" in head.replace(b"\r\n", b"") or b"\n" in head.replace(b"\r\n", b""):
        return None                                 # bare CR or LF: the parser splits lines there too
    ctype = cte = None
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if i == 0:
                return None
            continue
        if not _HEADER_LINE.match(line):
            return None                             # not a header line: the parser ends the header section
        name, _, value = line.partition(b":")
        if name[:8].lower() != b"content-":
            continue
        folded = i + 1 < len(lines) and lines[i + 1][:1] in (b" ", b"\t")
        kind = name.lower()
        if folded or kind not in (b"content-type", b"content-transfer-encoding"):
            return None                             # e.g. Content-Disposition: may name a file
        if (ctype if kind == b"content-type" else cte) is not None:
            return None                             # repeated field
        if kind == b"content-type":
            ctype = value
        else:
            cte = value.lstrip(b" \t").lower()     # as compat32 reads it: trailing blanks count
    charset = None
    if ctype is not None:
        plain = _PLAIN.fullmatch(ctype)
        if plain is None:
            return None
        params = {k.lower(): v for k, v in _PARAM.findall(plain.group(1))}
        if b"name" in params:                       # a named part is an attachment's file name
            return None
        charset = params[b"charset"].decode("ascii").lower() if b"charset" in params else None
    body = undo_transfer_encoding(raw[end + 4:], cte, strict=True)
    return None if body is None else (body, charset)   # None: the parser's lenient rules decide


def extract(raw: bytes) -> MessageFacts:
    """Parse ``raw`` once into the facts rules read; never raises on malformed mail."""
    plain = _plain_body(raw)
    if plain is not None:
        text = decode_text(*plain)
        return MessageFacts(text=normalise(text[:MAX_TEXT]), raw=raw[:raw.find(b"\r\n\r\n") + 4])
    return parse(raw)


def parse(raw: bytes) -> MessageFacts:
    """``extract`` through the email package's parser, whatever the message."""
    facts = MessageFacts()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:             # the stdlib parser is lenient, but never crash a stage on input
        return facts
    _add_headers(msg, facts.headers)
    try:
        _collect(msg, facts)
    except (ValueError, TypeError, LookupError, UnicodeError, AssertionError, RecursionError):
        pass
    return facts
