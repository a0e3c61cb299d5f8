"""What every LLM provider speaks: a request, a completion, one method.

A provider turns a :class:`CompletionRequest` into a :class:`Completion` or raises
:class:`LLMError` — for every failure to get an answer (rate limit that persists, timeout,
server error, refusal), with a one-line reason. Nothing in tighten needs an LLM; code that
can use one takes a :class:`Provider` and treats its answers as untrusted text.

Prices (:data:`PRICES_PER_MTOK`) are US dollars per million input and output tokens, from
the vendors' public price pages (checked 2025-08). A model is matched by its longest
known prefix (``gpt-4o-2024-08-06`` → ``gpt-4o``); a model not in the table has an
unknown cost (``None``), and a local server (Ollama) costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tighten.errors import TightenError
from tighten.http import PooledClient, RetryPolicy, retry_after_s
from tighten.http import one_line as _one_line

if TYPE_CHECKING:
    import httpx

__all__ = [
    "PRICES_PER_MTOK",
    "Completion",
    "CompletionRequest",
    "HTTPProvider",
    "LLMError",
    "Provider",
    "RetryPolicy",
    "estimate_tokens",
    "price_of",
    "retry_after_s",
]


class LLMError(TightenError):
    """An LLM call failed: the service was unreachable, too slow, kept refusing (rate
    limit, overload) after the retries, rejected the request, or gave no usable answer."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One call to a model.

    ``messages`` are ``{"role": "user" | "assistant", "content": str}`` dicts; the system
    instruction is separate in ``system``. ``json_schema``, when given, asks for a JSON
    answer matching it (structured output where the API supports it); ``schema_name`` names
    it for APIs that want a name."""

    messages: Sequence[Mapping[str, str]]
    system: str | None = None
    max_tokens: int = 1024
    temperature: float = 0.0
    json_schema: Mapping[str, Any] | None = None
    schema_name: str = "answer"


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer with what it cost. ``cost_usd`` is ``None`` when the model's price
    is unknown; ``latency_ms`` covers the whole call, retries included."""

    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    model: str
    latency_ms: float


@runtime_checkable
class Provider(Protocol):
    """An LLM behind one method.

    ``complete`` sends one request and returns the answer. It raises :class:`LLMError`
    (never another exception) when no answer could be had, after whatever retries the
    provider does. Providers that hold connections also have ``close()``."""

    def complete(self, request: CompletionRequest) -> Completion: ...


# USD per million tokens: (input, output).
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.0),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.0, 8.0),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.80, 4.0),
}


def price_of(model: str) -> tuple[float, float] | None:
    """The (input, output) USD price per million tokens of ``model``, by its longest known
    prefix; a router prefix such as ``openai/`` is ignored. ``None`` when unknown."""
    name = model.rsplit("/", 1)[-1].lower()
    matches = [key for key in PRICES_PER_MTOK if name == key or name.startswith(key + "-")]
    if not matches:
        return None
    return PRICES_PER_MTOK[max(matches, key=len)]


def cost_of(
    price: tuple[float, float] | None, input_tokens: int, output_tokens: int
) -> float | None:
    """The cost of a call at ``price`` (per million tokens), ``None`` if unknown."""
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


def estimate_tokens(text: str) -> int:
    """A rough token count (four characters a token) for budgets and missing usage."""
    return len(text) // 4


_RETRY_STATUS = frozenset({408, 409, 429})


def _api_message(response: httpx.Response) -> str:
    """The error message an OpenAI- or Anthropic-shaped error body carries."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text or response.reason_phrase)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return _one_line(error["message"])
    if isinstance(error, str):
        return _one_line(error)
    return _one_line(response.text)


@dataclass(slots=True)
class _Failure:
    reason: str
    wait_s: float | None = None


def post_json(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    service: str,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST ``body`` as JSON and return the JSON answer, retrying as ``retry`` says.

    Raises :class:`LLMError` with a one-line reason when the service rejects the request
    (4xx other than the retried ones), keeps failing after the retries, or answers with
    something that is not a JSON object."""
    attempt = 0
    while True:
        outcome = _attempt(client, url, headers, body, service)
        if isinstance(outcome, dict):
            return outcome
        if outcome.wait_s is not None and outcome.wait_s > retry.max_wait_s:
            raise LLMError(
                f"{service}: {outcome.reason}; the server asks to wait {outcome.wait_s:.0f} s, "
                f"more than the {retry.max_wait_s:.0f} s allowed. Try again later."
            )
        if attempt >= retry.max_retries:
            tries = "attempt" if attempt == 0 else "attempts"
            raise LLMError(f"{service}: {outcome.reason} ({attempt + 1} {tries}).")
        sleep(outcome.wait_s if outcome.wait_s is not None else retry.backoff(attempt))
        attempt += 1


def _attempt(
    client: httpx.Client,
    url: str,
    headers: Mapping[str, str],
    body: Mapping[str, Any],
    service: str,
) -> dict[str, Any] | _Failure:
    """One POST: the JSON answer, a retryable failure, or an :class:`LLMError`."""
    import httpx

    try:
        response = client.post(url, headers=dict(headers), json=body)
    except httpx.TimeoutException:
        return _Failure(f"no answer from {url} within the timeout")
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        detail = f"{type(exc).__name__}: {_one_line(str(exc), 80)}"
        return _Failure(f"cannot reach {url} ({detail}); is the server running?")
    except httpx.HTTPError as exc:
        raise LLMError(f"{service}: request to {url} failed: {_one_line(str(exc))}") from None
    status = response.status_code
    if status in _RETRY_STATUS or status >= 500:
        reason = f"HTTP {status} from {url}: {_api_message(response)}"
        return _Failure(reason, retry_after_s(response.headers))
    if status >= 400:
        hint = " Check the API key." if status in (401, 403) else ""
        raise LLMError(f"{service}: HTTP {status} from {url}: {_api_message(response)}.{hint}")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise LLMError(f"{service}: {url} answered with something that is not a JSON object.")
    return answer


class HTTPProvider(PooledClient):
    """What the HTTP providers share: a lazily opened ``httpx`` client (closed by
    :meth:`close` or ``with``), the timeout, the retry policy and the price."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        timeout_s: float,
        retry: RetryPolicy | None,
        price: tuple[float, float] | None,
        service: str,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
    ) -> None:
        super().__init__(timeout_s, transport)
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.price = price if price is not None else price_of(model)
        self.service = service
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def _post(
        self, path: str, headers: Mapping[str, str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return post_json(
            self._http(),
            self.base_url + path,
            headers=headers,
            body=body,
            service=self.service,
            retry=self.retry,
            sleep=self._sleep,
        )
