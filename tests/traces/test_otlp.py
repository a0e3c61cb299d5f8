"""OTLP input: spans from the real OpenTelemetry SDK, encoded as protobuf and as OTLP JSON."""

from __future__ import annotations

import gzip
import io
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.otel_agent import (
    BOOK_ARGS,
    BOOK_ERROR,
    BOOKING,
    FINAL_REPLY,
    SEARCH_ARGS,
    SEARCH_RESULT,
    SMALLTALK,
    SYSTEM,
    booking_agent_spans,
    event_style_spans,
    example_bytes,
    openinference_spans,
    openllmetry_spans,
    to_otlp_json,
    to_protobuf,
)
from tighten.traces.formats.base import ReadContext, SpanRecord
from tighten.traces.formats.jsonl import JsonlSessions
from tighten.traces.formats.otlp import OtlpJson, OtlpProtobuf, assemble_session
from tighten.traces.model import Reject, Session

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "otlp_genai_agent.json"
CONTEXT = ReadContext(source="test")
SPAN_KEYS = {
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano",
    "end_time_unix_nano", "status_code", "status_message", "attributes", "events",
    "resource", "scope", "session_id",
}  # fmt: skip


def read(fmt: OtlpJson | OtlpProtobuf, data: bytes, context: ReadContext = CONTEXT) -> list[Any]:
    return list(fmt.read(io.BytesIO(data), context))


def spans_of(records: list[Any]) -> list[dict[str, Any]]:
    return [span for rec in records if isinstance(rec, SpanRecord) for span in rec.spans]


def sessions_of(records: list[Any], context: ReadContext = CONTEXT) -> dict[str, Session]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for span in spans_of(records):
        grouped.setdefault(span["session_id"], []).append(span)
    return {sid: assemble_session(sid, group, context) for sid, group in grouped.items()}


def jsonl(*requests: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in requests)


def encodings() -> list[Any]:
    spans = booking_agent_spans()
    return [
        pytest.param(OtlpProtobuf(), to_protobuf(spans), id="protobuf"),
        pytest.param(OtlpJson(), example_bytes(), id="json-document"),
        pytest.param(OtlpJson(), jsonl(to_otlp_json(spans)), id="json-lines"),
    ]


# -- the example and sniffing ---------------------------------------------------------


def test_example_is_what_the_fake_agent_writes() -> None:
    assert EXAMPLE.read_bytes() == example_bytes()


def test_each_format_sniffs_its_own_encoding_only() -> None:
    spans = booking_agent_spans()
    pretty, lines, binary = example_bytes(), jsonl(to_otlp_json(spans)), to_protobuf(spans)
    session_line = (
        b'{"session_id": "s1", "messages": [{"role": "user", "content": "resourceSpans"}]}'
    )
    for head in (pretty, lines):
        assert OtlpJson().sniff(head[:65536])
        assert not OtlpProtobuf().sniff(head[:65536])
    assert OtlpProtobuf().sniff(binary[:65536])
    assert not OtlpJson().sniff(binary[:65536])
    assert not OtlpJson().sniff(session_line)
    assert not OtlpJson().sniff(b'{"messages": [], "x": {"resourceSpans": []}}')
    assert not OtlpProtobuf().sniff(b"\n" + session_line)
    tau = gzip.decompress((ROOT / "examples" / "tau_bench_airline_gpt4o.jsonl.gz").read_bytes())
    assert not OtlpJson().sniff(tau[:65536])
    assert not OtlpProtobuf().sniff(tau[:65536])
    assert JsonlSessions.priority > OtlpJson.priority > OtlpProtobuf.priority


# -- the booking agent, in every encoding -----------------------------------------------


@pytest.mark.parametrize(("fmt", "data"), encodings())
def test_reads_two_conversations(fmt: OtlpJson | OtlpProtobuf, data: bytes) -> None:
    records = read(fmt, data)
    assert [type(r) for r in records] == [SpanRecord]
    assert len(records[0].spans) == 8
    assert set(sessions_of(records)) == {BOOKING, SMALLTALK}


@pytest.mark.parametrize(("fmt", "data"), encodings())
def test_booking_transcript(fmt: OtlpJson | OtlpProtobuf, data: bytes) -> None:
    session = sessions_of(read(fmt, data))[BOOKING]
    roles = [m["role"] for m in session.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert session.messages[0]["content"] == SYSTEM
    assert session.messages[1]["content"].startswith("Book me the cheapest flight")
    assert session.messages[2]["tool_calls"] == [
        {"id": "call_1", "name": "search_flights", "arguments": _compact(SEARCH_ARGS)}
    ]
    assert session.messages[3]["content"] == SEARCH_RESULT
    assert session.messages[5]["content"] == f"Error: {BOOK_ERROR}"
    assert session.messages[6] == {
        "role": "assistant",
        "content": FINAL_REPLY,
        "timestamp": "2025-03-14T08:00:02.780000Z",
    }


@pytest.mark.parametrize(("fmt", "data"), encodings())
def test_booking_tool_calls_with_the_failure(fmt: OtlpJson | OtlpProtobuf, data: bytes) -> None:
    session = sessions_of(read(fmt, data))[BOOKING]
    sdk = {s.name: s for s in booking_agent_spans() if s.name.startswith("execute_tool")}
    search, book = session.tool_calls
    assert (search.name, search.call_id, search.status) == ("search_flights", "call_1", "ok")
    assert search.result == SEARCH_RESULT
    assert search.error is None
    assert (book.name, book.arguments, book.status) == ("book_flight", _compact(BOOK_ARGS), "error")
    assert book.error == BOOK_ERROR
    for call in (search, book):
        span = sdk[f"execute_tool {call.name}"]
        assert span.start_time is not None
        assert span.end_time is not None
        assert call.latency_ms == (span.end_time - span.start_time) / 1e6
        assert call.started_at is not None
        assert call.started_at.timestamp() * 1e9 == pytest.approx(span.start_time, abs=1e3)
    assert session.messages[5]["is_error"] is True


@pytest.mark.parametrize(("fmt", "data"), encodings())
def test_booking_session_fields(fmt: OtlpJson | OtlpProtobuf, data: bytes) -> None:
    sessions = sessions_of(read(fmt, data))
    booking = sessions[BOOKING]
    # three chat calls; the agent span repeats their totals and is not counted again
    assert (booking.input_tokens, booking.output_tokens, booking.total_tokens) == (1210, 95, 1305)
    assert booking.model == "gpt-4o-2024-08-06"
    assert booking.agent == "travel-agent"
    assert booking.origin == "otlp"
    assert booking.span_count == 6
    assert booking.started_at is not None
    assert booking.started_at.isoformat() == ("2025-03-14T08:00:00+00:00")
    assert booking.ended_at is not None
    assert booking.ended_at.tzinfo is not None
    assert booking.artifact_versions == {"system_prompt": "v3"}
    assert (booking.channel, booking.task_category) == ("web", "booking")
    assert booking.attributes == {"service.name": "travel-agent", "service.version": "1.4.0"}
    assert booking.cost_usd is None
    smalltalk = sessions[SMALLTALK]
    assert [m["role"] for m in smalltalk.messages] == ["system", "user", "assistant"]
    assert (smalltalk.input_tokens, smalltalk.output_tokens, smalltalk.span_count) == (150, 20, 2)
    assert smalltalk.tool_calls == []


def test_protobuf_and_json_give_the_same_span_dicts() -> None:
    spans = booking_agent_spans()
    from_protobuf = spans_of(read(OtlpProtobuf(), to_protobuf(spans)))
    from_json = spans_of(read(OtlpJson(), example_bytes()))
    from_base64 = spans_of(read(OtlpJson(), jsonl(to_otlp_json(spans, hex_ids=False))))
    assert from_protobuf == from_json == from_base64


def test_span_dict_shape() -> None:
    spans = spans_of(read(OtlpJson(), example_bytes()))
    assert all(set(span) == SPAN_KEYS for span in spans)
    by_name = {s["name"]: s for s in spans}
    failed = by_name["execute_tool book_flight"]
    assert failed["trace_id"] == "5eed0000000000000000000000000001"
    assert failed["parent_span_id"] == "a6e7000000000001"
    assert len(failed["span_id"]) == 16
    assert (failed["kind"], failed["status_code"]) == ("INTERNAL", "ERROR")
    assert failed["status_message"] == BOOK_ERROR
    assert failed["attributes"]["error.type"] == "PaymentDeclined"
    assert failed["events"][0]["name"] == "exception"
    assert failed["events"][0]["attributes"]["exception.message"] == BOOK_ERROR
    assert isinstance(failed["events"][0]["time_unix_nano"], int)
    assert failed["resource"] == {"service.name": "travel-agent", "service.version": "1.4.0"}
    assert failed["scope"] == {"name": "otel_agent", "version": "1.0.0"}
    chat = next(s for s in spans if s["name"] == "chat gpt-4o")
    assert chat["kind"] == "CLIENT"
    assert chat["status_code"] == "UNSET"
    assert chat["status_message"] is None
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 310
    assert chat["attributes"]["gen_ai.response.finish_reasons"] == ["tool_call"]
    assert isinstance(chat["start_time_unix_nano"], int)
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert [s["name"] for s in roots] == ["invoke_agent travel-agent"] * 2


def test_tool_span_takes_the_session_of_its_trace() -> None:
    spans = spans_of(read(OtlpJson(), example_bytes()))
    tool = next(s for s in spans if s["name"] == "execute_tool search_flights")
    assert "gen_ai.conversation.id" not in tool["attributes"]
    assert tool["session_id"] == BOOKING


def test_trace_without_a_session_attribute_is_its_own_session() -> None:
    request = to_otlp_json(booking_agent_spans())
    for span in request["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        span["attributes"] = [a for a in span["attributes"] if a["key"] != "gen_ai.conversation.id"]
    spans = spans_of(read(OtlpJson(), jsonl(request)))
    assert {s["session_id"] for s in spans} == {s["trace_id"] for s in spans}
    assert len({s["session_id"] for s in spans}) == 2


def test_split_shuffled_batches_assemble_the_same_session() -> None:
    sdk = booking_agent_spans()
    whole = spans_of(read(OtlpJson(), jsonl(to_otlp_json(sdk))))
    first = read(OtlpProtobuf(), to_protobuf(sdk[:3]))
    second = read(OtlpJson(), jsonl(to_otlp_json(sdk[3:])))
    parts = [s for s in spans_of(first) + spans_of(second) if s["session_id"] == BOOKING]
    random.Random(7).shuffle(parts)
    one = assemble_session(BOOKING, [s for s in whole if s["session_id"] == BOOKING], CONTEXT)
    split = assemble_session(BOOKING, parts, CONTEXT)
    assert split == one
    assert split.content_hash() == one.content_hash()


# -- other conventions ----------------------------------------------------------------


def test_openinference_spans() -> None:
    session = sessions_of(read(OtlpProtobuf(), to_protobuf(openinference_spans())))["oi-session-7"]
    assert [m["role"] for m in session.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert session.messages[2]["tool_calls"] == [
        {"id": "call_w", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert session.messages[3]["content"] == "rainy, 14C"
    assert session.messages[3]["tool_call_id"] == "call_w"
    assert session.messages[4]["content"] == "It is rainy and 14C in Paris."
    (call,) = session.tool_calls
    assert (call.name, call.status, call.result, call.latency_ms) == (
        "get_weather",
        "ok",
        "rainy, 14C",
        41.0,
    )
    assert (session.input_tokens, session.output_tokens, session.total_tokens) == (130, 27, 157)
    assert session.cost_usd == pytest.approx(0.004)
    assert session.model == "claude-3-5-sonnet"
    assert session.artifact_versions == {"prompt": "weather-v2"}
    assert session.agent == "oi-agent"  # no gen_ai.agent.name: the service name


def test_event_style_messages() -> None:
    session = sessions_of(read(OtlpJson(), jsonl(to_otlp_json(event_style_spans()))))["legacy-1"]
    assert [(m["role"], m["content"]) for m in session.messages] == [
        ("system", "Be brief."),
        ("user", "Where is order 42?"),
        ("assistant", ""),
        ("tool", "shipped"),
        ("assistant", "It has shipped."),
    ]
    assert session.messages[2]["tool_calls"] == [
        {"id": "c9", "name": "lookup_order", "arguments": '{"order": 42}'}
    ]
    assert session.tool_calls[0].result == "shipped"
    assert (session.input_tokens, session.output_tokens, session.model) == (80, 16, "gpt-4")


def test_openllmetry_indexed_attributes() -> None:
    session = sessions_of(read(OtlpProtobuf(), to_protobuf(openllmetry_spans())))["tl-3"]
    assert [(m["role"], m["content"]) for m in session.messages] == [
        ("user", "Convert 3 miles to km"),
        ("assistant", ""),
    ]
    assert session.messages[1]["tool_calls"] == [
        {"id": "t1", "name": "convert", "arguments": '{"miles": 3}'}
    ]
    assert (session.input_tokens, session.output_tokens, session.total_tokens) == (20, 5, 25)
    assert session.model == "gpt-4o-mini"
    assert session.tool_calls[0].status == "unknown"


# -- transcript merging ---------------------------------------------------------------


def chat_span(index: int, inputs: list[tuple[str, str]], reply: str) -> dict[str, Any]:
    """A stored chat span (the shape the formats write) with GenAI message attributes."""
    messages = [{"role": r, "parts": [{"type": "text", "content": c}]} for r, c in inputs]
    output = [{"role": "assistant", "parts": [{"type": "text", "content": reply}]}]
    return {
        "trace_id": "ab" * 16,
        "span_id": f"{index:016x}",
        "start_time_unix_nano": 1_000 * index,
        "end_time_unix_nano": 1_000 * index + 500,
        "attributes": {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": orjson.dumps(messages).decode(),
            "gen_ai.output.messages": orjson.dumps(output).decode(),
        },
    }


def transcript(spans: list[dict[str, Any]]) -> list[tuple[str, str]]:
    session = assemble_session("s", spans, CONTEXT)
    return [(m["role"], m["content"]) for m in session.messages]


def test_history_window_is_not_duplicated() -> None:
    system, u1, a1, u2 = ("system", "S"), ("user", "u1"), ("assistant", "a1"), ("user", "u2")
    spans = [
        chat_span(1, [system, u1], "a1"),
        chat_span(2, [system, u1, a1, u2], "a2"),
        chat_span(3, [system, ("assistant", "a2"), ("user", "u3")], "a3"),  # older turns cut
    ]
    expected = [system, u1, a1, u2, ("assistant", "a2"), ("user", "u3"), ("assistant", "a3")]
    assert transcript(spans) == expected
    assert transcript(list(reversed(spans))) == expected


def test_repeated_identical_messages_are_kept() -> None:
    yes, ok = ("user", "yes"), ("assistant", "ok")
    spans = [
        chat_span(1, [yes], "ok"),
        chat_span(2, [yes, ok, yes], "ok"),
        chat_span(3, [yes, ok, yes, ok, ("user", "thanks")], "bye"),
    ]
    assert transcript(spans) == [yes, ok, yes, ok, ("user", "thanks"), ("assistant", "bye")]
    # a window that starts mid-history and could also align on its first message alone
    windowed = [*spans[:2], chat_span(3, [ok, yes, ok, ("user", "more")], "done")]
    assert transcript(windowed) == [yes, ok, yes, ok, ("user", "more"), ("assistant", "done")]


def test_genai_parts_map_to_canonical_messages() -> None:
    photo = {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBO"}
    call = {"type": "tool_call", "id": "t1", "name": "vision", "arguments": {"q": 1}}
    result = {"type": "tool_call_response", "id": "t1", "result": {"label": "cat"}}
    inputs = [
        {"role": "user", "parts": [{"type": "text", "content": "What is in this photo?"}, photo]},
        {"role": "assistant", "parts": [{"type": "reasoning", "content": "Look it up."}, call]},
        {"role": "user", "parts": [result, {"type": "text", "content": "Thanks"}]},
    ]
    span = chat_span(1, [], "A cat.")
    span["attributes"]["gen_ai.input.messages"] = orjson.dumps(inputs).decode()
    messages = assemble_session("s", [span], CONTEXT).messages
    assert messages[0] == {
        "role": "user",
        "content": "What is in this photo?",
        "media": ["image/png"],
    }
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "t1", "name": "vision", "arguments": '{"q":1}'}],
        "reasoning": "Look it up.",
    }
    assert messages[2] == {"role": "tool", "content": '{"label":"cat"}', "tool_call_id": "t1"}
    assert messages[3] == {"role": "user", "content": "Thanks"}
    assert messages[4]["content"] == "A cat."


# -- partial data -------------------------------------------------------------------------


def booking_spans() -> list[dict[str, Any]]:
    spans = spans_of(read(OtlpJson(), example_bytes()))
    return [s for s in spans if s["session_id"] == BOOKING]


def test_session_of_only_tool_spans() -> None:
    tools = [s for s in booking_spans() if s["name"].startswith("execute_tool")]
    session = assemble_session(BOOKING, tools, ReadContext(source="t", agent="ops-bot"))
    assert [m["role"] for m in session.messages] == ["assistant", "tool", "assistant", "tool"]
    assert [(c.name, c.arguments, c.status) for c in session.tool_calls] == [
        ("search_flights", SEARCH_ARGS, "ok"),
        ("book_flight", BOOK_ARGS, "error"),
    ]
    assert session.tool_calls[1].error == BOOK_ERROR
    assert session.agent == "ops-bot"
    assert session.input_tokens is None
    assert session.model is None


def test_tool_result_goes_after_the_call_when_no_later_call_resends_it() -> None:
    spans = booking_spans()
    last_chat = max(
        (s for s in spans if s["name"] == "chat gpt-4o"), key=lambda s: s["start_time_unix_nano"]
    )
    session = assemble_session(BOOKING, [s for s in spans if s is not last_chat], CONTEXT)
    assert [m["role"] for m in session.messages][-2:] == ["assistant", "tool"]
    failed = session.messages[-1]
    assert (failed["tool_call_id"], failed["is_error"], failed["error"]) == (
        "call_2",
        True,
        BOOK_ERROR,
    )
    assert failed["content"] == ""
    assert session.tool_calls[1].status == "error"


def test_malformed_messages_are_skipped() -> None:
    spans = booking_spans()
    for span in spans:
        if "gen_ai.input.messages" in span["attributes"]:
            span["attributes"]["gen_ai.input.messages"] = '[{"role": "user", "parts": '
            span["attributes"]["gen_ai.output.messages"] = '{"not": "a list"}'
        span["attributes"].pop("gen_ai.system_instructions", None)
    spans.append({"span_id": 5, "attributes": "junk", "events": [1, None]})
    session = assemble_session(BOOKING, spans, CONTEXT)
    assert [m["role"] for m in session.messages] == ["assistant", "tool", "assistant", "tool"]
    assert session.input_tokens == 1210


def test_agent_usage_counts_when_no_model_call_reports_any() -> None:
    spans = [s for s in booking_spans() if not s["name"].startswith("chat")]
    session = assemble_session(BOOKING, spans, CONTEXT)
    assert (session.input_tokens, session.output_tokens) == (1210, 95)
    assert session.model == "gpt-4o"


# -- rejects ----------------------------------------------------------------------------


def test_broken_line_between_two_good_requests() -> None:
    good = to_otlp_json(booking_agent_spans())
    other = to_otlp_json(openinference_spans())
    data = jsonl(good) + b'{"resourceSpans": [\n' + jsonl(other)
    records = read(OtlpJson(), data)
    assert [type(r) for r in records] == [SpanRecord, Reject, SpanRecord]
    assert [r.line for r in records] == [1, 2, 3]
    assert records[1].reason.startswith("invalid JSON")
    assert set(sessions_of(records)) == {BOOKING, SMALLTALK, "oi-session-7"}


def test_bad_span_is_rejected_and_its_request_kept() -> None:
    request = to_otlp_json(booking_agent_spans())
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["traceId"] = "not-an-id"
    del spans[3]["spanId"]
    records = read(OtlpJson(), b"\n" + jsonl(request))
    assert [type(r) for r in records] == [SpanRecord, Reject, Reject]
    assert len(records[0].spans) == 6
    assert records[0].line == 2
    assert records[1].reason.startswith("span 1: traceId 'not-an-id' is neither 32 hex digits")
    assert records[2].reason == "span 3: spanId is missing"
    assert records[1].line == records[2].line == 2


def test_zero_ids() -> None:
    request = to_otlp_json(booking_agent_spans())
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    root = next(s for s in spans if "parentSpanId" not in s)
    root["parentSpanId"] = "0" * 16  # some exporters write zeros for "no parent"
    spans[0]["traceId"] = "0" * 32
    records = read(OtlpJson(), jsonl(request))
    assert [type(r) for r in records] == [SpanRecord, Reject]
    assert records[1].reason == "span 0: traceId is all zeros"
    stored = next(s for s in records[0].spans if s["span_id"] == root["spanId"])
    assert stored["parent_span_id"] is None


def test_oversized_attribute_rejects_the_span() -> None:
    request = to_otlp_json(booking_agent_spans())
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    big = {"key": "gen_ai.tool.call.result", "value": {"stringValue": "x" * 1001}}
    spans[1]["attributes"].append(big)
    context = ReadContext(source="t", max_field_chars=1000)
    records = read(OtlpJson(), jsonl(request), context)
    assert [type(r) for r in records] == [SpanRecord, Reject]
    assert len(records[0].spans) == 7
    assert records[1].reason == (
        "span 1: attribute 'gen_ai.tool.call.result' is 1,001 characters, "
        "over the limit of 1,000 (max_field_chars)"
    )


def test_protobuf_garbage_is_rejected() -> None:
    records = read(OtlpProtobuf(), b"\x0a\xff\xff\xff\xff\x0f\x0a\x01")
    assert len(records) == 1
    assert isinstance(records[0], Reject)
    assert records[0].reason.startswith("not an OTLP protobuf ExportTraceServiceRequest")
    (not_otlp,) = read(OtlpProtobuf(), b"\x12\x03abc")
    assert isinstance(not_otlp, Reject)
    assert "no resourceSpans" in not_otlp.reason


def test_too_large_inputs_are_rejected() -> None:
    context = ReadContext(source="t", max_record_bytes=2000)
    (binary,) = read(OtlpProtobuf(), to_protobuf(booking_agent_spans()), context)
    (document,) = read(OtlpJson(), example_bytes(), context)
    assert isinstance(binary, Reject)
    assert "max_record_bytes" in binary.reason
    assert isinstance(document, Reject)
    assert "max_record_bytes" in document.reason


def test_json_that_is_not_an_export_request() -> None:
    (reject,) = read(OtlpJson(), b'{"resourceSpans": 3}\n')
    assert isinstance(reject, Reject)
    assert reject.line == 1
    assert "no resourceSpans list" in reject.reason


def _compact(text: str) -> str:
    return orjson.dumps(orjson.loads(text)).decode()
