"""The one error tree of mailpipe.

Library errors (OSError from clamd, dns.exception, smtplib...) are translated
into these at the boundary of the module that called the library. Each class
says in the tree below which reply or outcome it maps to::

    MailpipeError
    ├── ConfigError              bad configuration; the program stops (no SMTP reply)
    ├── AccountError             account directory misuse (unknown domain, duplicate user...)
    ├── TransientError   (4xx)   try again later: broker down, clamd down, disk full, remote 4xx
    │   ├── BrokerUnavailable    publish not confirmed        -> 451 4.3.0
    │   ├── SpoolFull            spool write failed (ENOSPC)  -> 452 4.3.1
    │   └── FilterUnavailable    clamd/spamd cannot be asked  -> message deferred
    └── PermanentError   (5xx)   will never work as sent

Never send ``str(exc)`` of any of these to a client: replies come from
``ingress.replies``; the text here is for logs and operators.
"""

from __future__ import annotations


class MailpipeError(Exception):
    """Root of every error mailpipe raises on purpose."""


class ConfigError(MailpipeError):
    """Configuration is invalid; the message is one line for the operator."""


class AccountError(MailpipeError):
    """Misuse of the account directory (unknown domain, duplicate user, ...)."""


class TransientError(MailpipeError):
    """Retry later (maps to a 4xx reply or a deferral)."""



class BrokerUnavailable(TransientError):
    """The broker did not confirm a publish."""


class SpoolFull(TransientError):
    """The spool could not be written (disk full, quota, I/O error)."""



class FilterUnavailable(TransientError):
    """A filter daemon (clamd, spamd) could not be asked."""


class PermanentError(MailpipeError):
    """Will never succeed as sent (maps to a 5xx reply or a failure)."""
