"""Messages for rules tests: Vietnamese bodies in several charsets and encodings."""

from __future__ import annotations

import quopri
import unicodedata
from email.header import Header
from email.message import EmailMessage

PROMO_VI = "Chương trình khuyến mãi lớn nhất năm: giảm giá 50%!"


def cp1258_bytes(text: str) -> bytes:
    """Encode Vietnamese in windows-1258: base letters precomposed where the code page has them, tones combining."""
    out = bytearray()
    for char in unicodedata.normalize("NFC", text):
        try:
            out += char.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        base, *marks = unicodedata.normalize("NFD", char)
        for mark in marks:               # fold one mark into the base letter if the code page has it (ă, â, ê, ô, ơ, ư)
            letter = unicodedata.normalize("NFC", base + mark)
            if len(letter) == 1 and letter.encode("cp1258", errors="ignore"):
                marks.remove(mark)
                base = letter
                break
        out += (base + "".join(marks)).encode("cp1258")
    return bytes(out)


def raw_message(body: bytes, charset: str, cte: str, subject: str = "Tin tức", headers: str = "") -> bytes:
    encoded = quopri.encodestring(body) if cte == "quoted-printable" else __import__("base64").encodebytes(body)
    subject = Header(subject, "utf-8").encode()
    head = (f"From: shop@example.net\r\nTo: bob@example.com\r\nSubject: {subject}\r\n{headers}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n")
    return head.encode("ascii") + encoded.replace(b"\n", b"\r\n")


def utf8_base64(text: str = PROMO_VI) -> bytes:
    return raw_message(text.encode("utf-8"), "utf-8", "base64")


def utf8_nfd_qp(text: str = PROMO_VI) -> bytes:
    return raw_message(unicodedata.normalize("NFD", text).encode("utf-8"), "utf-8", "quoted-printable")


def cp1258_qp(text: str = PROMO_VI) -> bytes:
    return raw_message(cp1258_bytes(text), "windows-1258", "quoted-printable")


def html_mail(html: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.net", "bob@example.com", "html"
    msg.set_content(html, subtype="html")
    return bytes(msg)


def with_files(*names: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.net", "bob@example.com", "files"
    msg.set_content("files attached\n")
    for name in names:
        msg.add_attachment(b"data", maintype="application", subtype="octet-stream", filename=name)
    return bytes(msg)
