"""Replica routing and resilient POSTs for ``OpenAIBackend``: failover, back-off, Retry-After.

Light tier (httpx + stdlib). A :class:`ReplicaPool` spreads requests over the server URLs (least
in-flight first, optional affinity so one document stays on one replica's prefix cache), skips a
failed replica for a cool-down, and retries what is worth retrying.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import httpx

from model.client_caps import ServerError, read_error
from model.protocol import BackendError, BackendOverloaded, BackendUnavailable

#: How long a replica that failed is skipped before it is tried again.
REPLICA_COOL_DOWN_S = 30.0
_RETRYABLE_STATUS = (429, 503)


def retry_after_s(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (either form the RFC allows); None if absent or bad."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None  # not a date either (e.g. "abc"): the caller backs off instead
        if parsed is None:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def error_of(response: httpx.Response) -> ServerError:
    """A non-200 answer's status, message, param and type."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return read_error(response.status_code, body, response.text)


class Replica:
    """One server URL and its routing state."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.in_flight = 0
        self.failed_until = 0.0

    @property
    def api_base(self) -> str:
        return self.url if self.url.endswith("/v1") else f"{self.url}/v1"

    @property
    def completions_url(self) -> str:
        return f"{self.api_base}/completions"

    def healthy(self, now: float) -> bool:
        return now >= self.failed_until

    def mark_down(self) -> None:
        self.failed_until = time.monotonic() + REPLICA_COOL_DOWN_S


class ReplicaPool:
    """The replicas of one backend and the HTTP client that talks to them."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        api_key: str | None,
    ) -> None:
        self.replicas = [Replica(u) for u in urls]
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._affinity: dict[str, Replica] = {}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)), headers=headers
        )

    def pick(self, affinity: str | None, exclude: set[str]) -> Replica:
        now = time.monotonic()
        candidates = [r for r in self.replicas if r.url not in exclude and r.healthy(now)]
        if not candidates:  # everything is cooling down: try the least recently failed
            candidates = [r for r in self.replicas if r.url not in exclude] or self.replicas
            candidates = [min(candidates, key=lambda r: r.failed_until)]
        if affinity is not None:
            sticky = self._affinity.get(affinity)
            if sticky is not None and sticky in candidates:
                return sticky
        chosen = min(candidates, key=lambda r: (r.in_flight, random.random()))
        if affinity is not None:
            self._affinity[affinity] = chosen
        return chosen

    async def post(
        self,
        body_for: Callable[[Replica], dict[str, Any]],
        affinity: str | None,
        *,
        hold_back: Callable[[Replica], bool] = lambda _replica: False,
    ) -> tuple[Replica, httpx.Response]:
        """POST ``body_for(replica)`` until an answer that is not an outage: a 200, a 4xx, or a
        5xx from a replica for which ``hold_back`` says the caller should judge it.

        Transport errors and 5xx fail over to the other replicas; once every replica failed,
        the pool backs off (``backoff_s``, doubling) and tries again, ``retries`` times in all,
        so a single replica that blips is retried before it is declared down. 429/503 wait for
        ``Retry-After`` (or back off). A read timeout is not retried on the same replica: the
        next try would wait as long.
        """
        failed: set[str] = set()
        timed_out: set[str] = set()
        last_error: BackendError | None = None
        backoffs = 0
        for attempt in range(self.retries + 1):
            if len(failed) >= len(self.replicas):
                if len(timed_out) >= len(self.replicas):
                    break
                await asyncio.sleep(self.backoff_s * (2**backoffs))
                backoffs += 1
                failed = set(timed_out)
            replica = self.pick(affinity, failed)
            replica.in_flight += 1
            try:
                response = await self.client.post(replica.completions_url, json=body_for(replica))
            except (httpx.TransportError, OSError) as exc:
                # Cancellation (CancelledError) is not caught: httpx closes the connection.
                replica.mark_down()
                failed.add(replica.url)
                if isinstance(exc, httpx.TimeoutException) and not isinstance(
                    exc, httpx.ConnectTimeout
                ):
                    timed_out.add(replica.url)
                    last_error = BackendUnavailable(
                        f"the model server at {replica.url} did not answer within "
                        f"{self.timeout_s:g} s: raise the backend timeout or lower n / max_tokens"
                    )
                else:
                    last_error = BackendUnavailable(
                        f"cannot reach the model server at {replica.url} "
                        f"({type(exc).__name__}): start it with `docomplete serve --model PATH "
                        "--port 8000` or fix the backend URL in your settings"
                    )
                continue
            finally:
                replica.in_flight -= 1
            status = response.status_code
            if status == 200 or (400 <= status < 500 and status != 429):
                return replica, response
            if status in _RETRYABLE_STATUS:
                wait = retry_after_s(response)
                if wait is None:
                    wait = self.backoff_s * (2**attempt)
                last_error = BackendOverloaded(
                    f"the model server at {replica.url} is overloaded "
                    f"(HTTP {status}) after {attempt + 1} tries: "
                    "add replicas, lower n, or retry later"
                )
                if attempt < self.retries:
                    await asyncio.sleep(min(wait, self.timeout_s))
                continue
            if hold_back(replica):
                return replica, response
            replica.mark_down()
            failed.add(replica.url)
            last_error = BackendUnavailable(
                f"the model server at {replica.url} failed (HTTP {status}): "
                f"{error_of(response).message or 'no details'}"
            )
        assert last_error is not None
        raise last_error

    async def get_json(self, replica: Replica, path: str) -> Any:
        """``GET`` a small JSON document under ``/v1`` (None if the server does not answer it)."""
        try:
            response = await self.client.get(
                f"{replica.api_base}{path}", timeout=min(self.timeout_s, 5.0)
            )
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, OSError, ValueError):
            return None

    async def aclose(self) -> None:
        await self.client.aclose()
