"""Operator rules: a TOML file of named rules with conditions and an action.

Package layout: ``model`` (rule and condition dataclasses), ``conditions`` and
``parser`` (file -> model, errors with line numbers), ``mime`` (decoded text,
headers and attachment names of a message), ``engine`` (evaluation and the
why-trace), ``reloader`` (reload on change, keep the last good rules),
``tool`` (``mailpipe rules check`` / ``rules test``). The file format is
documented in docs/rules.md.

``RulesFilter`` is the filter the rules stage and the SMTP ingress call. It
is pure apart from the rules file it watches; it never raises on a message.
"""

from __future__ import annotations

from pathlib import Path

from mailpipe.core.clock import Clock, SystemClock
from mailpipe.filters.rules.engine import Facts, run, run_envelope
from mailpipe.filters.rules.model import ENVELOPE_FIELDS, Field
from mailpipe.filters.rules.reloader import RulesFile
from mailpipe.filters.verdict import FilterInput, Verdict
from mailpipe.core.config import RulesConfig


class RulesFilter:
    name = "rules"

    def __init__(self, path: Path | str, clock: Clock | None = None, check_interval: float = 1.0) -> None:
        """Load the rules now (RulesError if invalid); ``check`` looks for changes every ``check_interval`` s."""
        self.file = RulesFile(path)
        self.clock = clock or SystemClock()
        self.check_interval = check_interval
        self._next_check = self.clock.now() + check_interval

    def _maybe_reload(self) -> None:
        now = self.clock.now()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            self.file.reload_if_changed()

    def check(self, msg: FilterInput) -> Verdict:
        """Whole-message rules: first terminal action wins, add_header accumulates."""
        self._maybe_reload()
        facts = Facts(msg.client_ip, msg.helo, msg.sender, tuple(msg.recipients), msg.raw)
        return run(self.file.ruleset, facts).verdict

    def check_envelope(self, client_ip: str | None, helo: str | None, sender: str | None,
                       recipient: str | None) -> Verdict | None:
        """SMTP-time rules: a REJECT (answer 5xx) or TEMPFAIL (4xx) verdict, or None to go on.

        Pass what is known so far (``recipient=None`` at MAIL FROM); rules that
        need an unknown fact are left for the whole-message check.
        """
        self._maybe_reload()
        known = {Field.CLIENT_IP: client_ip, Field.HELO: helo, Field.SENDER: sender, Field.RECIPIENT: recipient}
        available = frozenset(f for f, value in known.items() if value is not None)
        facts = Facts(client_ip, helo, sender, (recipient,) if recipient is not None else ())
        return run_envelope(self.file.ruleset, facts, available & ENVELOPE_FIELDS)

    def reload_if_changed(self) -> None:
        """Reload when the file changed (mtime/size/inode); a broken file keeps the last good rules."""
        self.file.reload_if_changed()

    def reload(self) -> None:
        """Reload unconditionally (SIGHUP)."""
        self.file.reload()


def from_config(cfg: RulesConfig) -> RulesFilter | None:
    """The rules filter, or None when no rules file is configured; RulesError if the file is invalid."""
    if cfg.file is None:
        return None
    return RulesFilter(cfg.file, check_interval=cfg.reload_interval)
