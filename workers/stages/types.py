"""The type of a stage: ``run(rt, entry, message, recovering) -> None``.

Must not: import a stage module or the runtime at run time (the runtime imports the stages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from mailpipe.spool.model import Entry

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

#: one stage: the runtime, the spool entry (mutated), the raw message, "a previous run crashed"
Stage = Callable[["Runtime", Entry, bytes, bool], None]
