"""What one span says, read through the conventions GenAI instrumentations follow.

The OpenTelemetry GenAI conventions (``gen_ai.operation.name``, ``gen_ai.tool.*``,
``gen_ai.usage.*``, ``gen_ai.request.model``), OpenInference (``openinference.span.kind``,
``llm.model_name``, ``llm.token_count.*``, ``llm.cost.total``, ``tool.name``,
``input.value`` / ``output.value``) and OpenLLMetry (``traceloop.span.kind``,
``llm.usage.*``, ``traceloop.entity.*``). The messages a span carries are read by
:mod:`tighten.traces.formats.genai_messages`.

Every reader takes the span dict :mod:`tighten.traces.formats.otlp` stores; malformed
values are skipped, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "MEDIA_PARTS",
    "ToolSpan",
    "attrs",
    "json_text",
    "json_value",
    "nanos",
    "span_cost",
    "span_kind",
    "span_model",
    "span_usage",
    "text_of",
    "tool_span",
]

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow"})
LLM_HINTS = ("gen_ai.request.model", "gen_ai.input.messages", "gen_ai.prompt.0.role")
MEDIA_PARTS = frozenset({"blob", "file", "uri", "image", "audio", "video"})


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    value = span.get("attributes")
    return value if isinstance(value, dict) else {}


def span_kind(span: dict[str, Any]) -> str:
    """``llm``, ``embedding``, ``tool``, ``agent`` or ``other``."""
    a = attrs(span)
    operation = str(a.get("gen_ai.operation.name") or "").lower()
    oi_kind = str(a.get("openinference.span.kind") or "").upper()
    traceloop = str(a.get("traceloop.span.kind") or "").lower()
    if operation in LLM_OPERATIONS or oi_kind == "LLM":
        return "llm"
    if operation == "embeddings" or oi_kind == "EMBEDDING":
        return "embedding"
    if operation == "execute_tool" or oi_kind == "TOOL" or traceloop == "tool":
        return "tool"
    if operation in AGENT_OPERATIONS or oi_kind == "AGENT" or traceloop == "agent":
        return "agent"
    if a.get("llm.request.type") in ("chat", "completion") or any(k in a for k in LLM_HINTS):
        return "llm"  # instrumentations older than gen_ai.operation.name
    return "other"


@dataclass(slots=True)
class ToolSpan:
    """What a tool execution span says about one call."""

    name: str
    call_id: str | None
    arguments: str
    result: str | None
    error: str | None
    latency_ms: float | None
    start: int
    end: int


def tool_span(span: dict[str, Any]) -> ToolSpan:
    a = attrs(span)
    name = _first_text(a, "gen_ai.tool.name", "tool.name", "traceloop.entity.name")
    if name is None:
        span_name = str(span.get("name") or "tool")
        name = span_name.removeprefix("execute_tool ").strip() or "tool"
    call_id = _first_text(a, "gen_ai.tool.call.id", "tool.id", "tool_call.id")
    arguments = _first(a, "gen_ai.tool.call.arguments", "input.value", "traceloop.entity.input")
    result = _first(a, "gen_ai.tool.call.result", "output.value", "traceloop.entity.output")
    start, end = nanos(span.get("start_time_unix_nano")), nanos(span.get("end_time_unix_nano"))
    latency = (end - start) / 1e6 if start and end >= start else None
    return ToolSpan(
        name=name,
        call_id=call_id,
        arguments=json_text(arguments),
        result=None if result is None else json_text(result),
        error=_span_error(span),
        latency_ms=latency,
        start=start,
        end=end,
    )


def _span_error(span: dict[str, Any]) -> str | None:
    """The error text when the span failed: its status message, else the exception it
    recorded, else ``error.type``."""
    error_type = _first_text(attrs(span), "error.type")
    if span.get("status_code") != "ERROR" and error_type is None:
        return None
    message = span.get("status_message")
    if isinstance(message, str) and message:
        return message
    events = span.get("events")
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict) and event.get("name") == "exception":
            found = _first_text(event.get("attributes") or {}, "exception.message")
            if found:
                return found
    return error_type or "error"


def span_model(span: dict[str, Any]) -> str | None:
    return _first_text(
        attrs(span),
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.response.model_name",
        "llm.model_name",
        "llm.request.model_name",
    )


def span_usage(span: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """Input, output and total tokens of one span."""
    a = attrs(span)
    tokens_in = _first_int(
        a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt", "llm.usage.prompt_tokens",
    )  # fmt: skip
    tokens_out = _first_int(
        a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
        "llm.token_count.completion", "llm.usage.completion_tokens",
    )  # fmt: skip
    total = _first_int(a, "llm.token_count.total", "llm.usage.total_tokens")
    if total is None and (tokens_in is not None or tokens_out is not None):
        total = (tokens_in or 0) + (tokens_out or 0)
    return tokens_in, tokens_out, total


def span_cost(span: dict[str, Any]) -> float | None:
    """Cost in USD: OpenInference ``llm.cost.total`` or Langfuse's cost details."""
    a = attrs(span)
    cost = _number(a.get("llm.cost.total"))
    details = json_value(a.get("langfuse.observation.cost_details"))
    if cost is None and isinstance(details, dict):
        cost = _number(details.get("total"))
        numbers = [n for n in (_number(v) for v in details.values()) if n is not None]
        if cost is None and numbers:
            cost = sum(numbers)
    return cost


def text_of(value: Any) -> str:
    """Text from a string, a list of text parts or blocks, or anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (_part_text(v) for v in value) if t)
    if isinstance(value, dict):
        return _part_text(value)
    return json_text(value)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        for key in ("content", "text", "value"):
            if isinstance(part.get(key), str):
                return str(part[key])
        if part.get("type") in MEDIA_PARTS or "image_url" in part:
            return ""
        return json_text(part)
    return text_of(part)


def json_text(value: Any) -> str:
    """Arguments and results as text: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)


def json_value(value: Any) -> Any:
    """A JSON-encoded attribute decoded (``None`` when malformed); structured values as
    they are."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _first(a: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if a.get(key) is not None:
            return a[key]
    return None


def _first_text(a: Any, *keys: str) -> str | None:
    if not isinstance(a, dict):
        return None
    for key in keys:
        value = a.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _first_int(a: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = a.get(key)
        if isinstance(value, str) and value.isdigit():
            return int(value)
        number = _number(value)
        if number is not None and number.is_integer():
            return int(number)
    return None


def _number(value: Any) -> float | None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else None


def nanos(value: Any) -> int:
    """A stored span time, or 0 when it is missing or malformed."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0
