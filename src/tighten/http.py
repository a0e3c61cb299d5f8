"""HTTP pieces shared by every client tighten has (LLM providers, prompt registries,
chat channels): when to retry, how long a service asks us to wait, one-line messages."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    import httpx

__all__ = ["PooledClient", "RetryPolicy", "one_line", "retry_after_s"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before trying a failed call again.

    Retried (by the clients that use it): HTTP 408, 409, 429, 5xx, timeouts and connection
    errors — at most ``max_retries`` times, with exponential backoff from ``backoff_s``
    (capped at ``max_backoff_s``) and random jitter. A ``Retry-After`` (or
    ``retry-after-ms``) header is honoured; one asking for more than ``max_wait_s`` ends
    the retries at once."""

    max_retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_wait_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt + 1``: half fixed, half jitter."""
        delay = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return delay / 2 + self.rng.uniform(0, delay / 2)


def retry_after_s(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds a response asks the client to wait (``retry-after-ms``, or ``Retry-After``
    as seconds or an HTTP date), ``None`` if it does not say."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return None


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class PooledClient:
    """Owns one ``httpx.Client``: opened on first use (httpx is imported only then),
    reused for later calls, closed by :meth:`close` or by leaving a ``with`` block; a
    closed client opens again if used."""

    def __init__(self, timeout: float, transport: httpx.BaseTransport | None) -> None:
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self._timeout, transport=self._transport)
        return self._client

    def close(self) -> None:
        """Close the connections; new ones are opened if the client is used again."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
