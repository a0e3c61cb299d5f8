"""A deterministic provider for tests, docs and the offline demo (no network, no key).

>>> from tighten.llm import CompletionRequest, ScriptedProvider
>>> provider = ScriptedProvider(['{"signals": []}'])
>>> provider.complete(CompletionRequest([{"role": "user", "content": "hi"}])).text
'{"signals": []}'
>>> len(provider.requests)
1
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tighten.llm.base import Completion, CompletionRequest, LLMError, cost_of, estimate_tokens

__all__ = ["ScriptedProvider", "minimal_instance"]

Responder = Callable[[CompletionRequest], str]


class ScriptedProvider:
    """Answers from a script: a list of texts given in turn (an :class:`LLMError` once
    they run out) or a function of the request. Without a script it answers ``"ok"``, or
    the smallest JSON that matches the request's ``json_schema``.

    Every request is kept in :attr:`requests`. Tokens are counted as ``len(text) // 4``;
    the cost is zero unless ``price`` (USD per million input and output tokens) is given.
    """

    def __init__(
        self,
        responses: Sequence[str] | Responder | None = None,
        *,
        model: str = "scripted",
        price: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.model = model
        self.price = price
        self.requests: list[CompletionRequest] = []
        self._responder: Responder | None = None
        self._queue: list[str] | None = None
        if callable(responses):
            self._responder = responses
        elif responses is not None:
            self._queue = list(responses)

    def __repr__(self) -> str:
        return f"ScriptedProvider(model={self.model!r})"

    def complete(self, request: CompletionRequest) -> Completion:
        """Answer ``request`` from the script; see :class:`tighten.llm.base.Provider`."""
        started = time.perf_counter()
        self.requests.append(request)
        text = self._next(request)
        sent = (request.system or "") + "".join(m["content"] for m in request.messages)
        input_tokens, output_tokens = estimate_tokens(sent), estimate_tokens(text)
        return Completion(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_of(self.price, input_tokens, output_tokens),
            model=self.model,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _next(self, request: CompletionRequest) -> str:
        if self._responder is not None:
            return self._responder(request)
        if self._queue is not None:
            if not self._queue:
                raise LLMError(
                    f"ScriptedProvider: no scripted response left for request "
                    f"{len(self.requests)}; give it more responses."
                )
            return self._queue.pop(0)
        if request.json_schema is not None:
            return json.dumps(minimal_instance(request.json_schema))
        return "ok"


def minimal_instance(schema: Mapping[str, Any]) -> Any:
    """The smallest value matching a (simple) JSON schema: required properties only,
    empty arrays, the first enum value, zeros and empty strings."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: minimal_instance(props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal_instance(schema.get("items", {}))] * int(schema.get("minItems", 0))
    if kind in ("number", "integer"):
        low = schema.get("minimum", 0)
        return low if kind == "number" else int(low)
    if kind == "boolean":
        return False
    if kind == "string":
        return ""
    return None
