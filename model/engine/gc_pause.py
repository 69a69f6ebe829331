"""Pause Python's cyclic garbage collector around bulk imports and model loading."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """Collection off inside the block (it is re-enabled after, if it was on before).

    torch and transformers allocate vast numbers of long-lived objects while they import and
    load; a collection pass over them at every allocation threshold is pure overhead there.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
