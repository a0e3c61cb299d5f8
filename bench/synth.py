"""Synthetic traces for the benchmarks: realistic shapes, deterministic content."""

from __future__ import annotations

import random
from pathlib import Path

import orjson

__all__ = ["write_otlp_jsonl", "write_sessions"]

WORDS = [
    "flight",
    "booking",
    "refund",
    "seat",
    "baggage",
    "reservation",
    "customer",
    "please",
    "thanks",
    "policy",
    "change",
    "cancel",
    "upgrade",
    "payment",
    "card",
    "gift",
    "certificate",
    "insurance",
    "passenger",
    "airport",
    "delay",
]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _session(i: int, rng: random.Random, messages: int) -> dict[str, object]:
    msgs: list[dict[str, object]] = [{"role": "system", "content": _text(rng, 60)}]
    call = 0
    while len(msgs) < messages:
        msgs.append({"role": "user", "content": _text(rng, 15)})
        if rng.random() < 0.5 and len(msgs) < messages - 2:
            call += 1
            cid = f"call_{i}_{call}"
            msgs.append({"role": "assistant", "content": "", "tool_calls": [
                {"id": cid, "name": rng.choice(("search", "book", "refund")),
                 "arguments": f'{{"id": "{call}"}}'}]})  # fmt: skip
            result = "Error: not found" if rng.random() < 0.1 else _text(rng, 20)
            msgs.append({"role": "tool", "content": result, "tool_call_id": cid})
        msgs.append({"role": "assistant", "content": _text(rng, 25)})
    return {
        "session_id": f"bench-{i:08d}",
        "agent": "bench-agent",
        "started_at": f"2026-11-{1 + i % 28:02d}T10:00:00Z",
        "messages": msgs[:messages],
        "outcome": {"success": rng.random() < 0.6},
        "usage": {"input_tokens": 1000 + i % 500, "output_tokens": 200},
    }


def write_sessions(path: Path, count: int, messages: int = 30, seed: int = 7) -> int:
    """Write ``count`` JSONL sessions of about ``messages`` messages; return the messages."""
    rng = random.Random(seed)
    total = 0
    with path.open("wb") as f:
        for i in range(count):
            session = _session(i, rng, messages)
            total += len(session["messages"])  # type: ignore[arg-type]
            f.write(orjson.dumps(session) + b"\n")
    return total


def _attr(key: str, value: object) -> dict[str, object]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def write_otlp_jsonl(path: Path, traces: int, spans_per_trace: int = 10, seed: int = 7) -> int:
    """Write OTLP JSON export requests (one per line, one trace each); return the spans."""
    rng = random.Random(seed)
    total = 0
    with path.open("wb") as f:
        for t in range(traces):
            trace_id = f"{t + 1:032x}"
            spans = []
            for s in range(spans_per_trace):
                start = 1_700_000_000_000_000_000 + t * 10_000_000_000 + s * 1_000_000
                tool = s % 2 == 1
                attrs = [
                    _attr("gen_ai.conversation.id", f"conv-{t}"),
                    _attr("gen_ai.operation.name", "execute_tool" if tool else "chat"),
                    _attr("gen_ai.request.model", "gpt-4o"),
                ]
                if tool:
                    attrs += [_attr("gen_ai.tool.name", "search"),
                              _attr("gen_ai.tool.call.id", f"c{t}-{s}"),
                              _attr("gen_ai.tool.call.arguments", '{"q": "x"}'),
                              _attr("gen_ai.tool.call.result", _text(rng, 12))]  # fmt: skip
                else:
                    attrs += [_attr("gen_ai.usage.input_tokens", 500 + s),
                              _attr("gen_ai.usage.output_tokens", 50)]  # fmt: skip
                spans.append({
                    "traceId": trace_id, "spanId": f"{t * 100 + s + 1:016x}",
                    "name": "execute_tool search" if tool else "chat gpt-4o", "kind": 3,
                    "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 900_000),
                    "attributes": attrs, "status": {},
                })  # fmt: skip
            total += len(spans)
            request = {"resourceSpans": [{
                "resource": {"attributes": [_attr("service.name", "bench-agent")]},
                "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}],
            }]}  # fmt: skip
            f.write(orjson.dumps(request) + b"\n")
    return total
