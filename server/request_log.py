"""Request ids: one per completion request, threaded through every log line it causes."""

from __future__ import annotations

import contextvars
import itertools
import logging
from typing import Any

_request_numbers = itertools.count(1)

#: The request being served in this task; lets library log lines (httpx, engine) carry its id.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "docomplete_request_id", default=None
)


def new_request_id() -> str:
    return f"r{next(_request_numbers):05d}"


class RequestIdFilter(logging.Filter):
    """Handler filter: prefixes other libraries' records with the current request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if (
            request_id
            and not record.name.startswith("server")
            and not getattr(record, "_docomplete_tagged", False)
        ):
            record.msg = f"[{request_id}] {record.msg}"
            record._docomplete_tagged = True
        return True


class RequestLog(logging.LoggerAdapter):
    """Prefixes every message with the request id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['request_id'] if self.extra else '-'}] {msg}", kwargs
