"""The filter stages (antivirus, spam, rules): ask the filter, record its verdict, act on it.

A filter that is not configured passes the message on and says so on the trace
and in a header (``X-Mailpipe-<Stage>: not configured``). How each action
changes the entry is one table below (``_APPLY``); no bounce is ever sent for
a filter verdict (DESIGN guarantee 5).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from mailpipe.filters.verdict import Action, Filter, FilterInput, Verdict
from mailpipe.core.config import Config
from mailpipe.spool.model import Entry, Recipient, State
from mailpipe.workers.deferral import defer
from mailpipe.workers.stages.types import Stage

if TYPE_CHECKING:
    from mailpipe.workers.runtime import Runtime

log = logging.getLogger("mailpipe.filters")

_MODULES = {"antivirus": "mailpipe.filters.antivirus", "spam": "mailpipe.filters.spam", "rules": "mailpipe.filters.rules"}


def _configured(config: Config, name: str) -> bool:
    return {"antivirus": config.antivirus.clamd, "spam": config.spam.spamd,
            "rules": config.rules.file}[name] is not None


def build_filters(config: Config) -> dict[str, Filter | None]:
    """name -> filter object, or None when that filter is not configured."""
    built: dict[str, Filter | None] = {}
    for name in config.pipeline.filters:
        if not _configured(config, name):
            built[name] = None
            continue
        module = importlib.import_module(_MODULES[name])
        if name == "rules":
            built[name] = module.from_config(config.rules)
        else:
            built[name] = module.from_config(getattr(config, name), config.hostname)
    return built


def filter_input(entry: Entry, message: bytes) -> FilterInput:
    return FilterInput(raw=message, sender=entry.sender,
                       recipients=tuple(r.address for r in entry.open_recipients()),
                       client_ip=entry.client_ip, helo=entry.helo, auth_user=entry.auth_user,
                       queue_id=entry.id)


def runner(name: str) -> Stage:
    def run(rt: Runtime, entry: Entry, message: bytes, recovering: bool) -> None:
        flt = rt.filters.get(name)
        now = rt.clock.now()
        if flt is None:
            entry.added_headers.append((f"X-Mailpipe-{name.capitalize()}", "not configured"))
            entry.record(now, name, "not configured")
            return
        if isinstance(flt, Reloadable):
            flt.reload_if_changed()
        verdict: Verdict = flt.check(filter_input(entry, message))
        detail = "; ".join(x for x in (verdict.reason, ",".join(verdict.rules),
                                       f"score={verdict.score}" if verdict.score is not None else "") if x)
        entry.record(now, name, verdict.action.value, detail)
        log.info("%s: stage=%s, verdict=%s%s", entry.id, name, verdict.action.value, f" ({detail})" if detail else "")
        entry.added_headers.extend(verdict.headers)
        _APPLY[verdict.action](rt, entry, verdict, name)
    run.__name__ = f"run_{name}"
    return run


#: how one verdict action changes the entry
Apply = Callable[["Runtime", Entry, Verdict, str], None]


@runtime_checkable
class Reloadable(Protocol):
    """A filter that re-reads its configuration file when it changed (the rules)."""

    def reload_if_changed(self) -> None: ...


def _pass(rt: Runtime, entry: Entry, verdict: Verdict, stage: str) -> None:
    return None


def _junk(rt: Runtime, entry: Entry, verdict: Verdict, stage: str) -> None:
    entry.folder = "Junk"


def _redirect(rt: Runtime, entry: Entry, verdict: Verdict, stage: str) -> None:
    for rcpt in entry.open_recipients():
        rcpt.status, rcpt.detail = "discarded", f"redirected by {verdict.filter}"
    entry.recipients.extend(Recipient(address=a) for a in verdict.redirect_to)


def _keep(state: State) -> Apply:
    """Hold or quarantine: when released, the message continues with the stage after this one."""
    def keep(rt: Runtime, entry: Entry, verdict: Verdict, stage: str) -> None:
        entry.state = state
        entry.stage = rt.pipeline.next_stage(entry, stage) or stage
        detail = "; ".join(x for x in (verdict.reason, ", ".join(verdict.rules)) if x)
        entry.last_error = f"{verdict.filter}: {detail}" if detail else verdict.filter
    return keep


def _discard(rt: Runtime, entry: Entry, verdict: Verdict, stage: str) -> None:
    for rcpt in entry.open_recipients():
        rcpt.status, rcpt.detail = "discarded", f"{verdict.action.value} by {verdict.filter}: {verdict.reason}"


def _tempfail(rt: Runtime, entry: Entry, verdict: Verdict, stage: str) -> None:
    defer(rt, entry, stage, f"{verdict.filter}: {verdict.reason or 'temporary failure'}", verdict.retry_after)


_APPLY: dict[Action, Apply] = {
    Action.ACCEPT: _pass, Action.TAG: _pass, Action.ADD_HEADER: _pass,
    Action.JUNK: _junk, Action.REDIRECT: _redirect,
    Action.HOLD: _keep(State.HOLD), Action.QUARANTINE: _keep(State.QUARANTINE),
    Action.DISCARD: _discard, Action.REJECT: _discard, Action.TEMPFAIL: _tempfail,
}
