"""The anti-spam filter: raw message to spamd, score to action by thresholds.

Owns: skipping what spamc would not send (larger than ``max_size``) and mail
from authenticated senders (``skip_authenticated``); the ``X-Spam-Status`` /
``X-Spam-Score`` / ``X-Spam-Flag`` headers (flag YES from the lowest threshold on); the threshold ladder (highest
that the score reaches wins): discard > quarantine > junk > tag > accept;
spamd unavailable -> TEMPFAIL, or ACCEPT marked unscanned when
``on_error = "accept"``.

GTUBE, SpamAssassin's test mail, scores 1000 and would be discarded by the
default ladder; with ``gtube_junk`` (config ``gtube_action = "junk"``, the
default) it goes to Junk instead, so an operator can watch the spam path work.

Must not: do I/O itself (the client is injected), retry or touch the spool.
Never a bounce for spam (DESIGN guarantee 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from mailpipe.core.errors import FilterUnavailable
from mailpipe.filters.spamc import SpamcClient, SpamResult
from mailpipe.filters.verdict import Action, FilterInput, Verdict
from mailpipe.core.config import SpamConfig

STATUS_HEADER = "X-Spam-Status"
SCORE_HEADER = "X-Spam-Score"
FLAG_HEADER = "X-Spam-Flag"
#: SpamAssassin's rule for its test string (GTUBE)
GTUBE_RULE = "GTUBE"


class SpamChecker(Protocol):
    def check(self, raw: bytes) -> SpamResult: ...


@dataclass(frozen=True)
class Thresholds:
    tag: float = 5.0
    junk: float = 5.0
    quarantine: float = 10.0
    discard: float = 20.0

    @property
    def lowest(self) -> float:
        """The score from which a message counts as spam (gets ``X-Spam-Flag: YES``)."""
        return min(self.tag, self.junk, self.quarantine, self.discard)

    def action(self, score: float) -> Action:
        ladder = ((self.discard, Action.DISCARD), (self.quarantine, Action.QUARANTINE),
                  (self.junk, Action.JUNK), (self.tag, Action.TAG))
        for threshold, action in ladder:
            if score >= threshold:
                return action
        return Action.ACCEPT


class SpamFilter:
    name = "spam"

    def __init__(self, client: SpamChecker, thresholds: Thresholds, on_error: Literal["defer", "accept"],
                 retry_after: float, max_size: int, skip_authenticated: bool = True, gtube_junk: bool = False) -> None:
        self.client = client
        self.thresholds = thresholds
        self.on_error = on_error
        self.retry_after = retry_after
        self.max_size = max_size
        self.skip_authenticated = skip_authenticated
        self.gtube_junk = gtube_junk

    def check(self, msg: FilterInput) -> Verdict:
        skip = self._skip_reason(msg)
        if skip:
            return Verdict(Action.ACCEPT, self.name, reason=f"not scanned: {skip}",
                           headers=((STATUS_HEADER, f"No, skipped ({skip})"),))
        try:
            result = self.client.check(msg.raw)
        except FilterUnavailable as exc:
            return self._unavailable(str(exc))
        return self._verdict(result)

    def _skip_reason(self, msg: FilterInput) -> str:
        if msg.size > self.max_size:
            return "too large"
        if self.skip_authenticated and msg.auth_user:
            return "authenticated sender"
        return ""

    def _verdict(self, result: SpamResult) -> Verdict:
        action = self.thresholds.action(result.score)
        reason = _reason(action, self.thresholds)
        if self.gtube_junk and GTUBE_RULE in result.rules:
            action, reason = Action.JUNK, "GTUBE test mail goes to Junk (gtube_action)"
        is_spam = action is not Action.ACCEPT
        tests = ",".join(result.rules) or "none"
        required = self.thresholds.lowest
        status = f"{'Yes' if is_spam else 'No'}, score={result.score:.1f} required={required:.1f} tests={tests}"
        headers = [(STATUS_HEADER, status), (SCORE_HEADER, f"{result.score:.1f}")]
        if is_spam:
            headers.append((FLAG_HEADER, "YES"))
        return Verdict(action, self.name, reason=reason, headers=tuple(headers),
                       score=result.score, rules=result.rules)

    def _unavailable(self, detail: str) -> Verdict:
        if self.on_error == "accept":
            return Verdict(Action.ACCEPT, self.name, reason=f"unscanned: {detail}",
                           headers=((STATUS_HEADER, "No, unscanned (spamd unavailable)"),))
        return Verdict(Action.TEMPFAIL, self.name, reason=detail, retry_after=self.retry_after)


def _reason(action: Action, thresholds: Thresholds) -> str:
    limits = {Action.TAG: thresholds.tag, Action.JUNK: thresholds.junk,
              Action.QUARANTINE: thresholds.quarantine, Action.DISCARD: thresholds.discard}
    if action in limits:
        return f"at or above the {action.value} threshold {limits[action]:.1f}"
    return f"below every threshold (lowest {thresholds.lowest:.1f})"


def from_config(cfg: SpamConfig, hostname: str) -> SpamFilter | None:
    """The configured filter, or None when ``[spam] spamd`` is not set."""
    if cfg.spamd is None:
        return None
    thresholds = Thresholds(cfg.tag_threshold, cfg.junk_threshold, cfg.quarantine_threshold, cfg.discard_threshold)
    client = SpamcClient(cfg.spamd, timeout=cfg.timeout)
    return SpamFilter(client, thresholds, cfg.on_error, cfg.retry_after, cfg.max_size, cfg.skip_authenticated,
                      gtube_junk=cfg.gtube_action == "junk")

