"""The blocking half of a POP3 login: rate limit, password check, maildrop lock and scan.

Owns: turning credentials into a ``LoginOutcome`` and, on success, a locked
``Maildrop``. It runs in a worker thread (argon2 and file I/O block), so it
touches nothing of the event loop. Library errors (database, file system) are
logged here and become ``LoginOutcome.UNAVAILABLE``; their text never reaches
the client.

Must not: log or keep the password.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mailpipe.access.pop3.effects import LoginOutcome
from mailpipe.access.pop3.maildrop import Maildrop, MaildropInUse, MaildropUnavailable
from mailpipe.core.authlimit import LoginLimiter
from mailpipe.mailstore.directory import Directory
from mailpipe.mailstore.maildir import ensure_maildir, maildir_path

log = logging.getLogger("mailpipe.pop3")


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    maildrop: Maildrop | None = None
    delay: float = 0.0            # seconds to wait before answering a failure


def check_login(directory: Directory, limiter: LoginLimiter, data_dir: Path,
                user: str, password: str, ip: str) -> LoginResult:
    ticket = limiter.reserve(ip, user)          # checks and counts in one step
    if ticket is None:
        log.warning("pop3: login refused for %r from %s: too many failures", user, ip)
        return LoginResult(LoginOutcome.LOCKED_OUT)
    try:
        address = directory.authenticate(user, password)
    except Exception as exc:        # boundary: database driver errors of any kind
        limiter.release(ticket)
        log.error("pop3: account directory unavailable: %s", type(exc).__name__)
        return LoginResult(LoginOutcome.UNAVAILABLE)
    if address is None:
        log.info("pop3: failed login for %r from %s", user, ip)
        return LoginResult(LoginOutcome.BAD_CREDENTIALS, delay=limiter.failure(ticket))
    limiter.success(ticket)
    return _open_maildrop(data_dir, address, ip)


def _open_maildrop(data_dir: Path, address: str, ip: str) -> LoginResult:
    root = maildir_path(data_dir, address)
    try:
        ensure_maildir(root)
        maildrop = Maildrop.open(root)
    except MaildropInUse:
        log.info("pop3: %s from %s: maildrop in use", address, ip)
        return LoginResult(LoginOutcome.IN_USE)
    except (MaildropUnavailable, OSError) as exc:
        log.error("pop3: maildrop of %s unavailable: %s", address, exc)
        return LoginResult(LoginOutcome.UNAVAILABLE)
    log.info("pop3: %s logged in from %s (%d messages)", address, ip, len(maildrop.entries))
    return LoginResult(LoginOutcome.OK, maildrop)
