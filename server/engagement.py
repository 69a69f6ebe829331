"""What the user did with a completion: shown, accepted, partially accepted, dismissed, retained.

The server only hears fragments (a ``docomplete/shown`` notification, the ``docomplete.accept``
command, the next request, ``didChange``); this module turns them into telemetry events:

* **dismissed** — shown, then neither accepted nor partially accepted before the next request
  for that document, or before ``dismissTimeout`` seconds;
* **retained** — ``retentionDelays`` seconds (30 s and 2 min by default) after an accept, whether
  every line of the accepted text is still in the document (indentation and blank lines
  ignored), plus the share of its lines still there.
"""

from __future__ import annotations

import asyncio
import difflib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.pipeline import CompletionOutcome
from server.postprocess import insertion_text
from server.telemetry import TelemetryLog

_KEEP_OFFERS = 200


@dataclass
class Offer:
    """A completion answer the user may see: what each candidate would insert, and its verdict."""

    request_id: str
    uri: str
    arm: str | None
    texts: list[str]
    verdicts: list[str]

    def doctest(self, index: int) -> str | None:
        return self.verdicts[index] if 0 <= index < len(self.verdicts) else None


@dataclass
class _Shown:
    offer: Offer
    index: int
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Accepted:
    offer: Offer
    index: int
    text: str
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    checks_left: int = 0


def accepted_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def kept_fraction(accepted: str, document: str) -> float:
    """Share of the accepted text's non-blank lines still in ``document``, in order."""
    wanted = accepted_lines(accepted)
    if not wanted:
        return 1.0
    have = [line.strip() for line in document.splitlines()]
    matcher = difflib.SequenceMatcher(None, wanted, have, autojunk=False)
    kept = sum(block.size for block in matcher.get_matching_blocks())
    return kept / len(wanted)


def _whole_line_text(outcome: CompletionOutcome, index: int) -> str:
    """The accepted candidate as whole lines: what was typed before the cursor on its line,
    then what the editor inserted (so a continued first line is compared as the full line)."""
    site = outcome.site
    before_cursor = site.prompt.rsplit("\n", 1)[-1] + site.consumed_prefix
    return before_cursor + insertion_text(site, outcome.ranked[index].continuation)


class EngagementTracker:
    """Follows each document's latest offer and each accepted text until it is judged."""

    def __init__(self, telemetry: TelemetryLog, text_of: Callable[[str], str | None]) -> None:
        self.telemetry = telemetry
        self.text_of = text_of  # the open document's text, None when it is not open
        self.retention_delays: tuple[float, ...] = (30.0, 120.0)
        self.dismiss_timeout = 60.0
        self._offers: OrderedDict[str, Offer] = OrderedDict()
        self._shown: dict[str, _Shown] = {}  # per document: the suggestion on screen
        self._accepted: list[_Accepted] = []  # waiting for their retention checks
        self._last_text: dict[str, str] = {}  # documents with pending checks: latest text

    def configure(self, retention_delays: tuple[float, ...], dismiss_timeout: float) -> None:
        self.retention_delays, self.dismiss_timeout = retention_delays, dismiss_timeout

    # -- events from the server ------------------------------------------------------------------

    def request_started(self, uri: str) -> None:
        """A new request for ``uri``: whatever was on screen there was passed over."""
        self._dismiss(uri, "next-request")

    def offered(
        self, outcome: CompletionOutcome, uri: str, method: str, extra: dict[str, Any]
    ) -> None:
        """Record the ``completion`` event and remember the offer for later events."""
        offer = Offer(
            outcome.request_id,
            uri,
            outcome.arm,
            [insertion_text(outcome.site, ranked.continuation) for ranked in outcome.ranked],
            [ranked.doctest.status for ranked in outcome.ranked],
        )
        self._offers[offer.request_id] = offer
        while len(self._offers) > _KEEP_OFFERS:
            self._offers.popitem(last=False)
        params = outcome.params
        self.telemetry.record(
            "completion",
            requestId=outcome.request_id,
            uri=uri,
            method=method,
            function=outcome.site.function_name,
            arm=outcome.arm,
            temperature=params.temperature,
            topP=params.top_p,
            n=params.n,
            maxTokens=params.max_tokens,
            candidates=len(outcome.ranked),
            doctest=offer.doctest(0),
            doctests=offer.verdicts,
            fromCache=outcome.from_cache,
            latencyMs=round(outcome.timings_ms.get("total", 0.0), 1),
            timingsMs={k: round(v, 1) for k, v in outcome.timings_ms.items()},
            decodeSteps=outcome.decode_steps,
            answered=outcome.answered,
            **extra,
        )

    def shown(self, request_id: Any, index: Any) -> None:
        offer = self._offers.get(str(request_id))
        index = index if isinstance(index, int) else 0
        self.telemetry.record(
            "shown",
            requestId=request_id,
            index=index,
            uri=offer.uri if offer else None,
            arm=offer.arm if offer else None,
            doctest=offer.doctest(index) if offer else None,
        )
        if offer is None:
            return
        current = self._shown.get(offer.uri)
        if current is not None and current.offer.request_id == offer.request_id:
            current.index = index  # cycling through the same answer's candidates
            return
        self._dismiss(offer.uri, "replaced")
        shown = _Shown(offer, index)
        shown.timer = self._later(self.dismiss_timeout, self._dismiss, offer.uri, "timeout", shown)
        self._shown[offer.uri] = shown

    def accepted(self, outcome: CompletionOutcome | None, request_id: Any, index: Any) -> None:
        offer = self._offers.get(str(request_id))
        valid = outcome is not None and isinstance(index, int) and 0 <= index < len(outcome.ranked)
        self.telemetry.record(
            "accepted",
            requestId=request_id,
            index=index,
            uri=offer.uri if offer else None,
            arm=outcome.arm if outcome else (offer.arm if offer else None),
            temperature=outcome.params.temperature if outcome else None,
            doctest=offer.doctest(index) if offer and isinstance(index, int) else None,
        )
        if offer is None:
            return
        self._settle(offer)
        if outcome is None or not valid:
            return
        watch = _Accepted(offer, index, _whole_line_text(outcome, index))
        self.document_changed(offer.uri)
        for delay in self.retention_delays:
            watch.timers.append(self._later(delay, self._check_retained, watch, delay))
        watch.checks_left = len(watch.timers)
        self._accepted.append(watch)

    def partially_accepted(self, request_id: Any, index: Any, accepted_chars: Any) -> None:
        offer = self._offers.get(str(request_id))
        self.telemetry.record(
            "partial",
            requestId=request_id,
            index=index,
            uri=offer.uri if offer else None,
            arm=offer.arm if offer else None,
            acceptedChars=accepted_chars if isinstance(accepted_chars, int) else None,
        )
        if offer is not None:
            self._settle(offer)

    def document_changed(self, uri: str) -> None:
        """Keep the latest text of documents with pending retention checks (they may close)."""
        if any(watch.offer.uri == uri for watch in self._accepted):
            text = self.text_of(uri)
            if text is not None:
                self._last_text[uri] = text

    def close(self) -> None:
        """Stop every timer (server shutdown); checks not yet due are not recorded."""
        for shown in self._shown.values():
            if shown.timer is not None:
                shown.timer.cancel()
        for watch in self._accepted:
            for timer in watch.timers:
                timer.cancel()
        self._shown.clear()
        self._accepted.clear()

    # -- internals ----------------------------------------------------------------------------------

    @staticmethod
    def _later(delay: float, callback: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    def _settle(self, offer: Offer) -> None:
        """The user took (part of) this offer: it will not count as dismissed."""
        shown = self._shown.get(offer.uri)
        if shown is not None and shown.offer.request_id == offer.request_id:
            if shown.timer is not None:
                shown.timer.cancel()
            del self._shown[offer.uri]

    def _dismiss(self, uri: str, reason: str, only: _Shown | None = None) -> None:
        shown = self._shown.get(uri)
        if shown is None or (only is not None and shown is not only):
            return
        del self._shown[uri]
        if shown.timer is not None:
            shown.timer.cancel()
        self.telemetry.record(
            "dismissed",
            requestId=shown.offer.request_id,
            index=shown.index,
            uri=uri,
            arm=shown.offer.arm,
            doctest=shown.offer.doctest(shown.index),
            reason=reason,
        )

    def _check_retained(self, watch: _Accepted, delay: float) -> None:
        uri = watch.offer.uri
        text = self.text_of(uri)
        if text is None:
            text = self._last_text.get(uri)  # closed since: judge the text it was closed with
        fraction = kept_fraction(watch.text, text) if text is not None else None
        self.telemetry.record(
            "retained",
            requestId=watch.offer.request_id,
            index=watch.index,
            uri=uri,
            arm=watch.offer.arm,
            delayS=delay,
            retained=None if fraction is None else fraction >= 1.0,
            keptFraction=None if fraction is None else round(fraction, 3),
            documentOpen=self.text_of(uri) is not None,
        )
        watch.checks_left -= 1
        if watch.checks_left <= 0 and watch in self._accepted:
            self._accepted.remove(watch)
            if not any(other.offer.uri == uri for other in self._accepted):
                self._last_text.pop(uri, None)
