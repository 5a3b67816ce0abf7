"""Message facts for rules: decoded headers, decoded body text, attachment names.

Owns: turning raw bytes into what body/header/attachment conditions read -
transfer encodings (base64, quoted-printable) undone, every charset decoded
(unknown ones fall back to UTF-8 / Latin-1 with replacement), HTML tags
dropped, text Unicode NFC-normalised (so precomposed and decomposed Vietnamese
compare equal) and, for keywords, case-folded with whitespace collapsed.

Must not: raise on any input - a broken message yields what could be read.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import html
import re
import unicodedata
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message

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
    headers: dict[str, list[str]] = field(default_factory=dict)   #: lower-case name -> decoded values
    text: str = ""                                                 #: NFC body text of all text parts
    attachments: list[str] = field(default_factory=list)           #: file names as sent

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


def _decode_bytes(data: bytes, charset: str | None) -> str:
    try:
        codec = codecs.lookup(charset or "us-ascii").name
    except (LookupError, ValueError):
        codec = "utf-8"
    if codec == "ascii":
        codec = "utf-8"           # mislabelled 8-bit mail is mostly UTF-8
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return data.decode(codec if codec != "utf-8" else "latin-1", errors="replace")


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        return ""
    if not isinstance(payload, bytes):
        return ""
    text = _decode_bytes(payload, part.get_content_charset())
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


def extract(raw: bytes) -> MessageFacts:
    """Parse ``raw`` once into the facts rules read; never raises on malformed mail."""
    facts = MessageFacts()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:             # the stdlib parser is lenient, but never crash a stage on input
        return facts
    for name, value in msg.items():
        facts.headers.setdefault(name.lower(), []).append(normalise(decode_header_value(str(value))))
    try:
        _collect(msg, facts)
    except (ValueError, TypeError, LookupError, UnicodeError, AssertionError, RecursionError):
        pass
    return facts
