"""One module per stage. A stage is ``run(rt, entry, message, recovering) -> None``.

It reads the entry and the raw message, does its one job, mutates the entry
(recipient statuses, state, added headers) and records one trace event. The
pipeline decides what runs next. ``recovering`` is True when a previous run of
this message crashed, so a stage with side effects must check what it already did.

    smtp_in    loop detection, "received" on the trace
    antivirus  clamd            (filters/antivirus.py)
    spam       spamd            (filters/spam.py)
    rules      operator rules   (filters/rules/)
    route      local or remote per recipient, alias expansion
    local      Maildir delivery (mailstore/maildir.py)
    remote     SMTP relay       (delivery/)
"""

from mailpipe.workers.stages import filter_stage, local, remote, route, smtp_in
from mailpipe.workers.stages.types import Stage

STAGE_FUNCTIONS: dict[str, Stage] = {
    "smtp_in": smtp_in.run,
    "antivirus": filter_stage.runner("antivirus"),
    "spam": filter_stage.runner("spam"),
    "rules": filter_stage.runner("rules"),
    "route": route.run,
    "local": local.run,
    "remote": remote.run,
}
