"""Backend outages: one message per outage, and fail-fast while a model server is down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from model.protocol import BackendError


@dataclass
class BackendHealth:
    """Tracks outages so the user sees one message per outage, not one per keystroke."""

    retry_after_s: float = 1.0
    down_since: float | None = None
    last_failure: float = 0.0
    last_error: BackendError | None = None
    clock: Callable[[], float] = time.monotonic

    def should_fail_fast(self) -> BackendError | None:
        if self.down_since is None or self.last_error is None:
            return None
        if self.clock() - self.last_failure < self.retry_after_s:
            return self.last_error
        return None  # time to probe again

    def record_failure(self, error: BackendError) -> bool:
        """Returns True when this failure starts an outage (the moment to tell the user)."""
        first = self.down_since is None
        now = self.clock()
        if first:
            self.down_since = now
        self.last_failure = now
        self.last_error = error
        return first

    def record_success(self) -> bool:
        """Returns True when this success ends an outage."""
        recovered = self.down_since is not None
        self.down_since = None
        self.last_error = None
        return recovered


class BackendFailure(Exception):
    """A request failed because of the backend; ``first_of_outage`` says whether to tell."""

    def __init__(self, error: BackendError, *, first_of_outage: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.first_of_outage = first_of_outage
