"""Completion cache: ranked results keyed by prompt + parameters, with typed-ahead reuse.

When the user types the start of a cached candidate, the rest of that candidate is served
without a model call (its doctest verdict still holds: the function is the same).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

from server.ranking import RankedCandidate


@dataclass(frozen=True)
class CacheEntry:
    prompt: str
    ranked: tuple[RankedCandidate, ...]
    arm: str | None
    stored_at: float


class CompletionCache:
    """LRU of ranked results; entries expire after ``ttl_s`` seconds."""

    def __init__(
        self,
        max_entries: int = 128,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[Hashable, CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: Hashable) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry.stored_at > self.ttl_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self, key: Hashable, prompt: str, ranked: list[RankedCandidate], arm: str | None
    ) -> None:
        self._entries[key] = CacheEntry(prompt, tuple(ranked), arm, self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def typed_ahead(
        self, prompt: str, same_settings: Callable[[Hashable], bool]
    ) -> CacheEntry | None:
        """An entry whose prompt + the start of a candidate equals ``prompt``.

        Returns a derived entry holding only the candidates the user is typing along with,
        shortened to what is still missing, in their original order.
        """
        now = self._clock()
        for key in reversed(self._entries):
            entry = self._entries[key]
            if now - entry.stored_at > self.ttl_s or not same_settings(key):
                continue
            if len(prompt) <= len(entry.prompt) or not prompt.startswith(entry.prompt):
                continue
            typed = prompt[len(entry.prompt) :]
            remaining = [
                replace(ranked, continuation=ranked.continuation[len(typed) :])
                for ranked in entry.ranked
                if ranked.continuation.startswith(typed)
                and ranked.continuation[len(typed) :].strip()
            ]
            if remaining:
                self._entries.move_to_end(key)
                return CacheEntry(prompt, tuple(remaining), entry.arm, entry.stored_at)
        return None
