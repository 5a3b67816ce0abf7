"""Test messages built at run time (EICAR comes from the clamd package, never a file in the tree)."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.policy import SMTP

import clamd

from tools.avspam import TEST_MARKER

#: SpamAssassin's test string (GTUBE), matched as one line
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def plain(body: str = "Hello Bob,\n\nThe meeting is moved to Thursday at ten.\n\nAlice\n",
          subject: str = "Meeting", sender: str = "alice@example.org", to: str = "bob@example.com") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = "<t1@example.org>"
    msg["Date"] = "Fri, 27 Nov 2026 10:00:00 +0000"
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


def with_attachment(data: bytes, filename: str, maintype: str = "application", subtype: str = "octet-stream") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.org", "bob@example.com", "Files"
    msg.set_content("see attached\n")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP)


def eicar_mail() -> bytes:
    return with_attachment(clamd.EICAR, "invoice.com")


def zipped_marker_mail() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("readme.txt", b"nothing to see\n" + TEST_MARKER + b"\n" * 20)
    return with_attachment(buf.getvalue(), "docs.zip", "application", "zip")


def gtube_mail() -> bytes:
    return plain(body=f"This is the GTUBE test.\n\n{GTUBE}\n", subject="Test spam")
