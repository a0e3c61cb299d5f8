"""OpenAI chat completions, and every endpoint that speaks them (OpenRouter, Ollama, vLLM,
llama.cpp, LM Studio): ``POST {base_url}/chat/completions``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tighten.llm.base import (
    Completion,
    CompletionRequest,
    HTTPProvider,
    LLMError,
    RetryPolicy,
    cost_of,
    estimate_tokens,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["OPENAI_BASE_URL", "OpenAICompatProvider"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class OpenAICompatProvider(HTTPProvider):
    """A model behind an OpenAI-compatible chat completions endpoint.

    ``api_key`` is sent as a Bearer token when given (local servers need none).
    ``max_tokens_param`` is ``max_completion_tokens`` for OpenAI itself (its reasoning
    models reject ``max_tokens``) and ``max_tokens`` for the compatible servers; reasoning
    models (``o1``, ``o3``, ``o4``, ``gpt-5`` families) get no ``temperature``, which they
    reject. ``price`` overrides the built-in price table (USD per million input and output
    tokens; ``(0, 0)`` for a local server). ``transport`` is an ``httpx`` transport."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str = OPENAI_BASE_URL,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        price: tuple[float, float] | None = None,
        max_tokens_param: str = "max_tokens",
        service: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            model,
            base_url=base_url,
            timeout_s=timeout_s,
            retry=retry,
            price=price,
            service=service or "OpenAI-compatible endpoint",
            transport=transport,
            sleep=sleep,
        )
        self.max_tokens_param = max_tokens_param
        self._api_key = api_key

    def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request``; see :class:`tighten.llm.base.Provider`."""
        started = time.perf_counter()
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        answer = self._post("/chat/completions", headers, self.body(request))
        return self._completion(request, answer, (time.perf_counter() - started) * 1000)

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        """The JSON body for ``request``."""
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages += [{"role": m["role"], "content": m["content"]} for m in request.messages]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self.max_tokens_param: request.max_tokens,
        }
        if not self.model.rsplit("/", 1)[-1].startswith(_REASONING_PREFIXES):
            body["temperature"] = request.temperature
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": dict(request.json_schema),
                    "strict": True,
                },
            }
        return body

    def _completion(
        self, request: CompletionRequest, answer: dict[str, Any], latency_ms: float
    ) -> Completion:
        text = _content(answer, self.service)
        usage = answer.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt = _int(usage.get("prompt_tokens"))
        if prompt is None:
            sent = (request.system or "") + "".join(m["content"] for m in request.messages)
            prompt = estimate_tokens(sent)
        completion = _int(usage.get("completion_tokens"))
        if completion is None:
            completion = estimate_tokens(text)
        model = answer.get("model")
        return Completion(
            text=text,
            input_tokens=prompt,
            output_tokens=completion,
            cost_usd=cost_of(self.price, prompt, completion),
            model=model if isinstance(model, str) and model else self.model,
            latency_ms=latency_ms,
        )


def _content(answer: dict[str, Any], service: str) -> str:
    """``choices[0].message.content``, or an :class:`LLMError` saying why there is none."""
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise LLMError(f"{service}: the answer has no choices[0].message.")
    content = message.get("content")
    if isinstance(content, str):
        return content
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        raise LLMError(f"{service}: the model refused: {' '.join(refusal.split())[:200]}")
    raise LLMError(f"{service}: the answer's message has no text content.")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
