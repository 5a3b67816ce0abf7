"""Keeping the current rules of a file: load, reload when the file changes, keep the last good.

Owns: the file's change signature (mtime, size, inode), the last good
``RuleSet``, and logging each load failure once with its ``FILE:LINE``.

Must not: evaluate rules or install signal handlers (the worker's SIGHUP
handler calls ``reload()``; ``reload_if_changed()`` is cheap: one ``stat``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mailpipe.filters.rules.parser import RulesError, parse_file

log = logging.getLogger("mailpipe.filters.rules")


class RulesFile:
    def __init__(self, path: Path | str) -> None:
        """Load ``path`` now; RulesError when it is invalid (there is no last good set yet)."""
        self.path = Path(path)
        self._signature = self._stat()
        self.ruleset = parse_file(self.path)
        self.last_error: list[str] = []

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload_if_changed(self) -> bool:
        """Reload when the file's signature changed; True when new rules are in force."""
        signature = self._stat()
        if signature == self._signature:
            return False
        self._signature = signature
        return self.reload()

    def reload(self) -> bool:
        """Parse the file again; on error keep the last good rules and log the error lines."""
        try:
            ruleset = parse_file(self.path)
        except RulesError as exc:
            self.last_error = exc.messages
            for message in exc.messages:
                log.error("rules not reloaded, keeping the last good rules: %s", message)
            return False
        self.ruleset, self.last_error = ruleset, []
        log.info("rules reloaded from %s: %d rules", self.path, len(ruleset.rules))
        return True
