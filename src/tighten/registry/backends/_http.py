"""What the prompt-service registries (Langfuse, PromptLayer) share: a JSON-over-HTTP
client with retries and one-line errors, and the commit message that carries a version's
author and reason.

Errors, one line each, never with a credential in them:

- the service cannot be reached, or keeps answering 408/429/5xx after the retries:
  :class:`~tighten.errors.StoreError`;
- it rejects the credentials (401/403): :class:`~tighten.errors.StoreError` saying to check
  the key;
- it does not know the prompt, version or label (404):
  :class:`~tighten.errors.InputError` with the caller's message;
- it refuses the request otherwise (400, 409, 422, …):
  :class:`~tighten.errors.StoreError` with the service's own reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from tighten.errors import InputError, StoreError
from tighten.http import PooledClient, RetryPolicy, retry_after_s
from tighten.http import one_line as _one_line

__all__ = ["JSONClient", "RetryPolicy", "commit_message", "parse_commit_message", "parse_time"]

_RETRY_STATUS = frozenset({408, 429})
_BY = " — by "


# Registries answer fast or not at all: shorter waits than the LLM providers'.
REGISTRY_RETRY = RetryPolicy(backoff_s=0.5, max_backoff_s=8.0, max_wait_s=30.0)


def _service_message(response: httpx.Response) -> str:
    """The reason an error body gives (``message``, ``detail`` or ``error``)."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text or response.reason_phrase)
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return _one_line(value)
    return _one_line(response.text)


@dataclass(slots=True)
class _Retryable:
    reason: str
    wait_s: float | None = None


class JSONClient(PooledClient):
    """One service's JSON API: its base URL and auth headers, a lazily opened ``httpx``
    client (closed by :meth:`close` or ``with``), the timeout and the retry policy.

    ``secrets`` are scrubbed from every error message, whatever the service echoes."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        headers: Mapping[str, str],
        secrets: Iterable[str],
        timeout: float,
        transport: httpx.BaseTransport | None,
        retry: RetryPolicy | None,
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(timeout, transport)
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.retry = retry or REGISTRY_RETRY
        self._headers = dict(headers)
        self._secrets = tuple(s for s in secrets if len(s) >= 4)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(service={self.service!r}, base_url={self.base_url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        not_found: str,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request (retried as the policy says) and return its JSON answer
        (``None`` for an empty one). A 404 raises :class:`InputError` with ``not_found``."""
        attempt = 0
        while True:
            outcome = self._attempt(method, path, params, body, not_found)
            if not isinstance(outcome, _Retryable):
                return outcome
            wait = outcome.wait_s
            if wait is not None and wait > self.retry.max_wait_s:
                raise self._error(
                    StoreError,
                    f"{outcome.reason}; it asks to wait {wait:.0f} s, more than the "
                    f"{self.retry.max_wait_s:.0f} s allowed. Try again later.",
                )
            if attempt >= self.retry.max_retries:
                tries = "attempt" if attempt == 0 else "attempts"
                raise self._error(
                    StoreError, f"{outcome.reason} ({attempt + 1} {tries}). Try again later."
                )
            self._sleep(wait if wait is not None else self.retry.backoff(attempt))
            attempt += 1

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        not_found: str,
    ) -> Any:
        url = self.base_url + path
        try:
            response = self._http().request(
                method, url, params=params, json=body, headers=self._headers
            )
        except httpx.TimeoutException:
            return _Retryable(f"no answer from {self.base_url} within {self._timeout:g} s")
        except httpx.TransportError as exc:
            detail = f"{type(exc).__name__}: {_one_line(str(exc), 80)}"
            return _Retryable(f"cannot reach {self.base_url} ({detail}); is the URL right?")
        return self._answer(method, path, response, not_found)

    def _answer(self, method: str, path: str, response: httpx.Response, not_found: str) -> Any:
        status = response.status_code
        where = f"HTTP {status} from {method} {path}"
        if status in _RETRY_STATUS or status >= 500:
            wait = retry_after_s(response.headers)
            return _Retryable(f"{where}: {_service_message(response)}", wait)
        if status in (401, 403):
            raise self._error(
                StoreError,
                f"{where}: the credentials were rejected ({_service_message(response)}). "
                f"Check the {self.service} key.",
            )
        if status == 404:
            raise self._error(InputError, not_found)
        if status >= 400:
            raise self._error(StoreError, f"{where}: {_service_message(response)}.")
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._error(StoreError, f"{where} is not JSON.") from None

    def _error(self, kind: type[StoreError] | type[InputError], message: str) -> Exception:
        text = f"{self.service}: {message}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return kind(text)


def commit_message(author: str, reason: str | None, limit: int | None = None) -> str:
    """The commit message of a version tighten publishes: ``<reason> — by <author>``
    (``by <author>`` without a reason). With ``limit``, the reason is shortened to fit."""
    who = " ".join(author.split()) or "unknown"
    what = " ".join((reason or "").split())
    if not what:
        return f"by {who}"
    if limit is not None:
        room = limit - len(_BY) - len(who)
        what = what if len(what) <= room else what[: max(room - 1, 0)] + "…"
    return f"{what}{_BY}{who}"


def parse_commit_message(message: object) -> tuple[str | None, str | None]:
    """(author, reason) from a commit message; a message tighten did not write is all
    reason, with no author."""
    if not isinstance(message, str) or not message.strip():
        return None, None
    text = message.strip()
    reason, sep, author = text.rpartition(_BY)
    if sep and author:
        return author, reason or None
    if text.startswith("by ") and "\n" not in text:
        return text[3:] or None, None
    return None, text


def parse_time(value: object) -> datetime | None:
    """A service's ISO 8601 timestamp as a UTC datetime, ``None`` if absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
