"""Telemetry: completion / shown / accepted events as JSON lines, for A/B analysis.

Events go to a file (``telemetryFile`` setting, or ``telemetry.jsonl`` next to ``--log-file``)
and to a small in-memory ring that ``docomplete/telemetry`` returns. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class TelemetryLog:
    def __init__(self, path: Path | None = None, keep: int = 500) -> None:
        self.path = path
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def set_path(self, path: Path | None) -> None:
        self.path = path

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"event": event, "time": round(time.time(), 3), **fields}
        with self._lock:
            self.recent.append(entry)
            if self.path is not None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with self.path.open("a", encoding="utf-8") as handle:
                        handle.write(json.dumps(entry, sort_keys=True) + "\n")
                except OSError as exc:
                    logger.warning("cannot write telemetry to %s: %s", self.path, exc)
        return entry
