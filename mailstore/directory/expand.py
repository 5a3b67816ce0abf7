"""Alias and catch-all expansion for one address, over lookup callbacks. Pure.

Owns: the expansion rule shared by every directory implementation: an exact
alias applies first; else a local user is itself; else the domain's catch-all
(``@domain``) applies, with a bare target local part taken in that domain.
Loops and chains deeper than ``MAX_ALIAS_DEPTH`` stop.

Must not: do I/O itself (the callbacks may, and may cache).
"""

from __future__ import annotations

from typing import Callable

from mailpipe.mailstore.directory.interface import MAX_ALIAS_DEPTH

Targets = Callable[[str], tuple[str, ...] | None]   # alias source -> targets, None if no alias
IsUser = Callable[[str], bool]


def expand(address: str, is_user: IsUser, targets: Targets) -> list[str]:
    result: list[str] = []
    seen: set[str] = set()
    pending = [(address, 0)]
    while pending:
        current, depth = pending.pop()
        if current in seen or depth > MAX_ALIAS_DEPTH:
            continue
        seen.add(current)
        user = is_user(current)
        found = targets(current)
        if found is None and not user:
            domain = current.rpartition("@")[2]
            found = targets("@" + domain)
            if found is not None:
                found = tuple(t if "@" in t else f"{t}@{domain}" for t in found)
        if user and current not in result:
            result.append(current)
        for target in found or ():
            pending.append((target, depth + 1))
    return sorted(result)
