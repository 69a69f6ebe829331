"""Choose torch's CPU thread count for the decode loop by measuring decode steps."""

from __future__ import annotations

from collections.abc import Callable


def _torch_set_num_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


class ThreadTuner:
    """Switches between two thread counts (one per core, and one) while decoding.

    With the cores to itself the engine decodes fastest with a thread per core (2 cores, n=4:
    ~12 ms per step against ~17 ms with one thread); when other processes keep the cores busy,
    OpenMP threads wait on each other and a step takes 250-560 ms against 40 ms with one
    thread. Which case holds changes while an editor runs, so the tuner measures: now and then
    one step runs with the other count, and when it is clearly faster than the step just before
    it (same batch rows) the engine switches. Probes that lose are spaced out exponentially
    (``first_interval`` … ``max_interval`` steps), so a wrong guess costs one slow step in
    hundreds; after a switch probing starts over, so a wrong switch is undone quickly.
    """

    def __init__(
        self,
        counts: tuple[int, int],
        *,
        first_interval: int = 2,
        max_interval: int = 1024,
        margin: float = 0.75,
        set_threads: Callable[[int], None] = _torch_set_num_threads,
    ) -> None:
        self.current, self.other = counts
        self.first_interval = first_interval
        self.max_interval = max_interval
        self.margin = margin
        self.switches = 0
        self._set_threads = set_threads
        self._interval = first_interval
        self._countdown = first_interval
        self._probing = False
        self._last: tuple[int, float] | None = None  # (rows, seconds) of the last regular step
        set_threads(self.current)

    def before_step(self, rows: int) -> None:
        """Call before a decode step of ``rows`` rows: maybe run it as a probe."""
        self._countdown -= 1
        if self._countdown <= 0 and self._last is not None and self._last[0] == rows:
            self._probing = True
            self._set_threads(self.other)

    def after_step(self, rows: int, seconds: float) -> None:
        """Call with the step's duration (the forward pass the thread count affects)."""
        if not self._probing:
            self._last = (rows, seconds)
            return
        self._probing = False
        assert self._last is not None
        if seconds < self.margin * self._last[1]:
            self.current, self.other = self.other, self.current  # already set for the probe
            self.switches += 1
            self._interval = self.first_interval
        else:
            self._set_threads(self.current)
            self._interval = min(2 * self._interval, self.max_interval)
        self._countdown = self._interval
        self._last = None  # the next regular step is the next baseline
