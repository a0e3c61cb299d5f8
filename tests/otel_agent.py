"""Fake agents instrumented with the real OpenTelemetry SDK, and their OTLP encodings.

The spans come from a real ``TracerProvider`` into an ``InMemorySpanExporter``; ids come
from a counting ``IdGenerator`` and every span gets explicit start and end times, so the
output is the same on every run. ``python tests/otel_agent.py examples/otlp_genai_agent.json``
regenerates the bundled example.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

T0 = 1_741_939_200_000_000_000  # 2025-03-14T08:00:00Z
MS = 1_000_000
MODEL = "gpt-4o"
RESPONSE_MODEL = "gpt-4o-2024-08-06"
SYSTEM = "You are a travel agent. Use the tools to search and book flights."
BOOKING = "conv-booking-001"
SMALLTALK = "conv-baggage-002"
SEARCH_ARGS = '{"origin": "SFO", "destination": "JFK", "date": "2025-03-20"}'
SEARCH_RESULT = '[{"flight": "UA 512", "departs": "08:05", "price_usd": 329}]'
BOOK_ARGS = '{"flight": "UA 512", "passenger": "Ada Lovelace"}'
BOOK_ERROR = "payment declined: card expired"
FINAL_REPLY = (
    "I found UA 512 departing 08:05 for $329, but the payment was declined because the "
    "card on file has expired. Could you give me another card?"
)


class CountingIds(IdGenerator):
    """Trace and span ids that count up from fixed values."""

    def __init__(self) -> None:
        self.traces = 0
        self.spans = 0

    def generate_trace_id(self) -> int:
        self.traces += 1
        return (0x5EED << 112) + self.traces

    def generate_span_id(self) -> int:
        self.spans += 1
        return (0xA6E7 << 48) + self.spans


class FakeRun:
    """A tracer with a fake clock: each span starts now and ends when its block ends."""

    def __init__(self, service: str = "travel-agent") -> None:
        self.exporter = InMemorySpanExporter()
        resource = Resource({"service.name": service, "service.version": "1.4.0"})
        self.provider = TracerProvider(
            resource=resource, id_generator=CountingIds(), shutdown_on_exit=False
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("otel_agent", "1.0.0")
        self.now = T0

    @contextmanager
    def span(
        self,
        name: str,
        attributes: dict[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        ms: int = 10,
        new_trace: bool = False,
    ) -> Iterator[Span]:
        context = trace.set_span_in_context(trace.INVALID_SPAN) if new_trace else None
        span = self.tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=self.now
        )
        with trace.use_span(span, end_on_exit=False):
            self.now += MS
            yield span
            self.now += ms * MS
        span.end(end_time=self.now)
        self.now += MS

    def chat(self, attributes: dict[str, Any], *, ms: int) -> None:
        """A model call: a client span with nothing inside it."""
        self.leaf(
            f"chat {attributes['gen_ai.request.model']}", attributes, kind=SpanKind.CLIENT, ms=ms
        )

    def leaf(
        self,
        name: str,
        attributes: dict[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        ms: int = 10,
        new_trace: bool = False,
    ) -> None:
        """A span with nothing inside it."""
        with self.span(name, attributes, kind=kind, ms=ms, new_trace=new_trace):
            pass

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"type": "text", "content": text}]}


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    part = {"type": "tool_call", "id": call_id, "name": name, "arguments": orjson.loads(arguments)}
    return {"role": "assistant", "parts": [part]}


def _reply(text: str) -> dict[str, Any]:
    return {"role": "assistant", "parts": [{"type": "text", "content": text}]}


def _answer(call_id: str, response: str) -> dict[str, Any]:
    return {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": call_id, "response": response}],
    }


def _chat(
    conversation: str,
    inputs: list[dict[str, Any]],
    output: dict[str, Any],
    tokens: tuple[int, int],
    finish: str,
) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": RESPONSE_MODEL,
        "gen_ai.conversation.id": conversation,
        "gen_ai.usage.input_tokens": tokens[0],
        "gen_ai.usage.output_tokens": tokens[1],
        "gen_ai.response.finish_reasons": [finish],
        "gen_ai.system_instructions": _json([{"type": "text", "content": SYSTEM}]),
        "gen_ai.input.messages": _json(inputs),
        "gen_ai.output.messages": _json([{**output, "finish_reason": finish}]),
        "tighten.artifact.system_prompt.version": "v3",
    }


def _tool(name: str, call_id: str, arguments: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.call.arguments": arguments,
    }


def _agent(conversation: str, tokens: tuple[int, int]) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "travel-agent",
        "gen_ai.conversation.id": conversation,
        "gen_ai.request.model": MODEL,
        "gen_ai.usage.input_tokens": tokens[0],  # repeats its chat calls' totals
        "gen_ai.usage.output_tokens": tokens[1],
        "tighten.channel": "web",
        "tighten.task_category": "booking",
    }


def booking_agent_spans() -> list[ReadableSpan]:
    """Two conversations: a booking with two tool calls (the second fails) over three chat
    calls, and a one-turn question. Tool spans carry no conversation id of their own."""
    run = FakeRun()
    ask = _user("Book me the cheapest flight from SFO to JFK on 2025-03-20, for Ada Lovelace.")
    search = _call("call_1", "search_flights", SEARCH_ARGS)
    book = _call("call_2", "book_flight", BOOK_ARGS)
    reply = _reply(FINAL_REPLY)
    with run.span("invoke_agent travel-agent", _agent(BOOKING, (1210, 95)), new_trace=True):
        run.chat(_chat(BOOKING, [ask], search, (310, 28), "tool_call"), ms=800)
        tool = _tool("search_flights", "call_1", SEARCH_ARGS)
        with run.span("execute_tool search_flights", tool, ms=120) as span:
            span.set_attribute("gen_ai.tool.call.result", SEARCH_RESULT)
        history = [ask, search, _answer("call_1", SEARCH_RESULT)]
        run.chat(_chat(BOOKING, history, book, (402, 31), "tool_call"), ms=700)
        with run.span(
            "execute_tool book_flight", _tool("book_flight", "call_2", BOOK_ARGS), ms=250
        ) as span:
            span.set_attribute("error.type", "PaymentDeclined")
            failure = {"exception.type": "PaymentDeclined", "exception.message": BOOK_ERROR}
            span.add_event("exception", failure, timestamp=run.now)
            span.set_status(Status(StatusCode.ERROR, BOOK_ERROR))
        history += [book, _answer("call_2", f"Error: {BOOK_ERROR}")]
        run.chat(_chat(BOOKING, history, reply, (498, 36), "stop"), ms=900)
    question = _user("How many bags can I bring on UA?")
    answer = _reply("One carry-on and one personal item.")
    with run.span("invoke_agent travel-agent", _agent(SMALLTALK, (150, 20)), new_trace=True):
        run.chat(_chat(SMALLTALK, [question], answer, (150, 20), "stop"), ms=400)
    return run.spans()


def openinference_spans() -> list[ReadableSpan]:
    """An OpenInference-instrumented agent: AGENT → LLM → TOOL → LLM, ``session.id`` on
    every span, flattened ``llm.input_messages`` / ``llm.output_messages``."""
    run = FakeRun(service="oi-agent")
    session = {"session.id": "oi-session-7"}
    system = {"message.role": "system", "message.content": "You answer weather questions."}
    user = {"message.role": "user", "message.content": "Weather in Paris?"}
    call = {
        "message.role": "assistant",
        "message.tool_calls.0.tool_call.id": "call_w",
        "message.tool_calls.0.tool_call.function.name": "get_weather",
        "message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris"}',
    }
    result = {
        "message.role": "tool",
        "message.content": "rainy, 14C",
        "message.tool_call_id": "call_w",
    }
    final = {"message.role": "assistant", "message.content": "It is rainy and 14C in Paris."}

    def llm(
        inputs: list[dict[str, Any]], output: dict[str, Any], tokens: tuple[int, int]
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            **session,
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-3-5-sonnet",
            "llm.token_count.prompt": tokens[0],
            "llm.token_count.completion": tokens[1],
            "llm.token_count.total": sum(tokens),
            "llm.cost.total": 0.002,
            "llm.prompt_template.version": "weather-v2",
        }
        for i, message in enumerate(inputs):
            attributes.update({f"llm.input_messages.{i}.{k}": v for k, v in message.items()})
        attributes.update({f"llm.output_messages.0.{k}": v for k, v in output.items()})
        return attributes

    agent = {**session, "openinference.span.kind": "AGENT", "input.value": "Weather in Paris?"}
    tool = {
        **session,
        "openinference.span.kind": "TOOL",
        "tool.name": "get_weather",
        "input.value": '{"city": "Paris"}',
        "output.value": "rainy, 14C",
    }
    with run.span("agent", agent, new_trace=True):
        run.leaf("llm", llm([system, user], call, (50, 12)), ms=300)
        run.leaf("get_weather", tool, ms=40)
        run.leaf("llm", llm([system, user, call, result], final, (80, 15)), ms=300)
    return run.spans()


def event_style_spans() -> list[ReadableSpan]:
    """Older GenAI instrumentation: messages as span events (bodies flattened or in
    ``gen_ai.event.content``), usage as ``prompt_tokens`` / ``completion_tokens``."""
    run = FakeRun(service="legacy-bot")
    call = {
        "id": "c9",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"order": 42}'},
    }
    history = [
        ("gen_ai.system.message", {"gen_ai.event.content": _json({"content": "Be brief."})}),
        ("gen_ai.user.message", {"content": "Where is order 42?"}),
    ]
    first = {
        "index": 0,
        "finish_reason": "tool_calls",
        "message": {"role": "assistant", "tool_calls": [call]},
    }
    second = [
        *history,
        ("gen_ai.assistant.message", {"gen_ai.event.content": _json({"tool_calls": [call]})}),
        (
            "gen_ai.tool.message",
            {"gen_ai.event.content": _json({"content": "shipped", "id": "c9"})},
        ),
    ]
    last = {"index": 0, "message": {"content": "It has shipped."}}
    calls = [(history, first, (30, 9)), (second, last, (50, 7))]
    for index, (events, choice, tokens) in enumerate(calls):
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4",
            "gen_ai.conversation.id": "legacy-1",
            "gen_ai.usage.prompt_tokens": tokens[0],
            "gen_ai.usage.completion_tokens": tokens[1],
        }
        with run.span("chat gpt-4", attributes, new_trace=index == 0) as span:
            for name, body in [*events, ("gen_ai.choice", {"gen_ai.event.content": _json(choice)})]:
                span.add_event(name, body, timestamp=run.now)
    return run.spans()


def openllmetry_spans() -> list[ReadableSpan]:
    """OpenLLMetry's indexed ``gen_ai.prompt.{i}`` / ``gen_ai.completion.{i}`` attributes."""
    run = FakeRun(service="traceloop-app")
    attributes = {
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "traceloop.association.properties.session_id": "tl-3",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Convert 3 miles to km",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "t1",
        "gen_ai.completion.0.tool_calls.0.name": "convert",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"miles": 3}',
        "gen_ai.usage.prompt_tokens": 20,
        "gen_ai.usage.completion_tokens": 5,
        "llm.usage.total_tokens": 25,
    }
    run.leaf("openai.chat", attributes, kind=SpanKind.CLIENT, new_trace=True)
    return run.spans()


def to_protobuf(spans: Sequence[ReadableSpan]) -> bytes:
    """The spans as one binary OTLP ``ExportTraceServiceRequest``."""
    return bytes(encode_spans(spans).SerializeToString())


def to_otlp_json(spans: Sequence[ReadableSpan], *, hex_ids: bool = True) -> dict[str, Any]:
    """The spans as one ``ExportTraceServiceRequest`` in the OTLP JSON encoding: camelCase
    keys, enums as numbers, trace and span ids as hex (``json_format`` writes base64)."""
    request: dict[str, Any] = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    if hex_ids:
        _hex_ids(request)
    return request


def _hex_ids(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _hex_ids(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)


def example_bytes() -> bytes:
    """The bundled example: the booking agent's spans as pretty-printed OTLP JSON."""
    document = to_otlp_json(booking_agent_spans())
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/otel_agent.py OUTPUT.json")
    Path(sys.argv[1]).write_bytes(example_bytes())
