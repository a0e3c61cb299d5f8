"""Anthropic's Messages API: ``POST {base_url}/v1/messages``."""

from __future__ import annotations

import json
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
)

if TYPE_CHECKING:
    import httpx

__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(HTTPProvider):
    """A Claude model through the Messages API.

    The system instruction goes in the top-level ``system`` field. A request with a
    ``json_schema`` (which must describe an object) is sent as one tool the model is
    made to call (``tool_choice``), the documented way to get schema-shaped JSON; the
    completion's text is then the tool input, JSON-encoded."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str = ANTHROPIC_BASE_URL,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        price: tuple[float, float] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            model,
            base_url=base_url,
            timeout_s=timeout_s,
            retry=retry,
            price=price,
            service="Anthropic API",
            transport=transport,
            sleep=sleep,
        )
        self._api_key = api_key

    def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request``; see :class:`tighten.llm.base.Provider`."""
        started = time.perf_counter()
        headers = {
            "content-type": "application/json",
            "x-api-key": self._api_key,
            "anthropic-version": ANTHROPIC_VERSION,
        }
        answer = self._post("/v1/messages", headers, self.body(request))
        text = self._text(request, answer)
        usage = answer.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        input_tokens = _int(usage.get("input_tokens"))
        output_tokens = _int(usage.get("output_tokens"))
        model = answer.get("model")
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_of(self.price, input_tokens, output_tokens),
            model=model if isinstance(model, str) and model else self.model,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        """The JSON body for ``request``."""
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m["role"], "content": m["content"]} for m in request.messages],
            "temperature": min(1.0, max(0.0, request.temperature)),
        }
        if request.system:
            body["system"] = request.system
        if request.json_schema is not None:
            body["tools"] = [
                {
                    "name": request.schema_name,
                    "description": "Give the answer as this tool's input.",
                    "input_schema": dict(request.json_schema),
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": request.schema_name}
        return body

    def _text(self, request: CompletionRequest, answer: dict[str, Any]) -> str:
        blocks = answer.get("content")
        if not isinstance(blocks, list):
            raise LLMError(f"{self.service}: the answer has no content list.")
        blocks = [b for b in blocks if isinstance(b, dict)]
        if request.json_schema is not None:
            for block in blocks:
                if block.get("type") == "tool_use" and block.get("name") == request.schema_name:
                    return json.dumps(block.get("input"), ensure_ascii=False)
        texts = [b["text"] for b in blocks if b.get("type") == "text" and "text" in b]
        if not texts and answer.get("stop_reason") == "refusal":
            raise LLMError(f"{self.service}: the model refused to answer.")
        return "".join(str(t) for t in texts)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
