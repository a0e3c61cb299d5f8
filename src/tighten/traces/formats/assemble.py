"""One normalized session from all its spans, whatever batches they arrived in.

Every LLM call carries the whole history in its input, so the transcript is rebuilt by
walking the LLM spans in time order, appending the input messages the transcript does not
already end with, then the call's reply. Tool spans then give each tool call its result,
latency and error: on the tool message that answers the call, or on one inserted after the
assistant message that made it (or, with no such message, a call and answer of their own).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tighten.traces.formats.base import ReadContext
from tighten.traces.formats.genai import (
    ToolSpan,
    attrs,
    nanos,
    span_cost,
    span_kind,
    span_model,
    span_usage,
    tool_span,
)
from tighten.traces.formats.genai_messages import input_messages, output_messages
from tighten.traces.model import Session

__all__ = ["assemble_session"]

MAX_NAME = 200
USAGE_KINDS = frozenset({"llm", "embedding"})
ARTIFACT_KEY = re.compile(r"tighten\.artifact\.(.+)\.version")
PROMPT_KEYS = (
    ("gen_ai.prompt.name", "gen_ai.prompt.version"),
    ("langfuse.observation.prompt.name", "langfuse.observation.prompt.version"),
    ("langfuse.prompt.name", "langfuse.prompt.version"),
)
RESOURCE_KEYS = ("service.name", "service.version")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def assemble_session(session_id: str, spans: list[dict[str, Any]], context: ReadContext) -> Session:
    """Build the session from every stored span of it (any order, any batches)."""
    ordered = sorted((s for s in spans if isinstance(s, dict)), key=_order)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for span in ordered:
        by_kind.setdefault(span_kind(span), []).append(span)
    messages = _transcript(by_kind.get("llm", [])) or _transcript(by_kind.get("agent", []))
    tools = [tool_span(span) for span in by_kind.get("tool", [])]
    _attach_tools(messages, tools)
    counted = _usage_spans(by_kind)
    tokens = _tokens(counted)
    starts = [t for t in (nanos(s.get("start_time_unix_nano")) for s in ordered) if t]
    ends = [t for t in (nanos(s.get("end_time_unix_nano")) for s in ordered) if t]
    session = Session(
        session_id=session_id,
        messages=messages,
        agent=_agent(ordered, context),
        origin="otlp",
        channel=_setting(ordered, "tighten.channel"),
        task_category=_setting(ordered, "tighten.task_category"),
        model=_model(by_kind.get("llm") or ordered),
        started_at=_time(min(starts)) if starts else None,
        ended_at=_time(max(ends)) if ends else None,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        total_tokens=tokens[2],
        cost_usd=_cost(counted),
        artifact_versions=_versions(ordered),
        attributes=_resource_summary(ordered),
        span_count=len(spans),
    ).finalize()
    started = {t.call_id: _time(t.start) for t in tools if t.call_id and t.start}
    for call in session.tool_calls:
        call.started_at = started.get(call.call_id or "", call.started_at)
    return session


# -- transcript -----------------------------------------------------------------------


def _transcript(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    transcript: list[dict[str, Any]] = []
    for span in spans:
        _merge(transcript, input_messages(span))
        outputs = output_messages(span)
        if outputs:
            reply = dict(outputs[0])
            stamp = _iso(nanos(span.get("end_time_unix_nano")))
            if stamp:
                reply["timestamp"] = stamp
            transcript.append(reply)
    return transcript


def _merge(transcript: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> None:
    """Append the input messages that are new: those after the longest stretch of the
    input that the transcript already ends with (system messages already seen aside)."""
    if not inputs:
        return
    seen_system = {_key(m) for m in transcript if m["role"] == "system"}
    fresh = [m for m in inputs if not (m["role"] == "system" and _key(m) in seen_system)]
    history = [_key(m) for m in transcript if m["role"] != "system"]
    transcript.extend(fresh[_overlap(history, [_key(m) for m in fresh]) :])


def _overlap(history: list[tuple[Any, ...]], keys: list[tuple[Any, ...]]) -> int:
    """How many leading input messages the transcript already holds: the whole history
    resent (the usual case), else the largest ``p`` whose first messages match the end
    of the history (a sliding window of recent messages)."""
    size = len(history)
    if not size or keys[:size] == history:
        return size
    for p in range(len(keys), 0, -1):
        width = min(p, size)
        if keys[p - width : p] == history[size - width :]:
            return p
    return 0


def _key(msg: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two messages the same one, across the spans that resend it."""
    calls = tuple(
        (c.get("name"), _normal_json(c.get("arguments"))) for c in msg.get("tool_calls") or ()
    )
    return msg.get("role"), " ".join(str(msg.get("content") or "").split()), calls


def _normal_json(text: Any) -> Any:
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, TypeError):
        return str(text).strip()


# -- tools ----------------------------------------------------------------------------


def _attach_tools(messages: list[dict[str, Any]], tools: list[ToolSpan]) -> None:
    filled: set[int] = set()  # id() of the tool messages a span has filled
    for tool in tools:
        target = _answer(messages, tool, filled) or _insert_answer(messages, tool)
        filled.add(id(target))
        _fill(target, tool)


def _answer(
    messages: list[dict[str, Any]], tool: ToolSpan, filled: set[int]
) -> dict[str, Any] | None:
    """The tool message that answers this call: by call id, else by tool name."""
    names = _call_names(messages)
    answers = [m for m in messages if m["role"] == "tool" and id(m) not in filled]
    if tool.call_id:
        for msg in answers:
            if msg.get("tool_call_id") == tool.call_id:
                return msg
        if tool.call_id in names:
            return None  # the call is in the transcript, unanswered
    for msg in answers:
        if (msg.get("name") or names.get(msg.get("tool_call_id") or "")) == tool.name:
            return msg
    return None


def _insert_answer(messages: list[dict[str, Any]], tool: ToolSpan) -> dict[str, Any]:
    answer: dict[str, Any] = {"role": "tool", "content": "", "name": tool.name}
    if tool.call_id:
        answer["tool_call_id"] = tool.call_id
    caller = _caller(messages, tool)
    if caller is not None:
        at = caller + 1
        while at < len(messages) and messages[at]["role"] == "tool":
            at += 1
        messages.insert(at, answer)
        return answer
    call = {"id": tool.call_id, "name": tool.name, "arguments": tool.arguments}
    stamp = _iso(tool.start) or ""
    at = next(
        (i for i, m in enumerate(messages) if str(m.get("timestamp") or "") > stamp),
        len(messages),
    )
    messages[at:at] = [{"role": "assistant", "content": "", "tool_calls": [call]}, answer]
    return answer


def _caller(messages: list[dict[str, Any]], tool: ToolSpan) -> int | None:
    """The assistant message that made this call: by id, else the first unanswered call
    of the tool's name."""
    answered = {m.get("tool_call_id") for m in messages if m["role"] == "tool"}
    for index, msg in enumerate(messages):
        calls = msg.get("tool_calls") if msg["role"] == "assistant" else None
        for call in calls or ():
            if tool.call_id and call.get("id") == tool.call_id:
                return index
            unanswered = call.get("id") is None or call.get("id") not in answered
            if not tool.call_id and call.get("name") == tool.name and unanswered:
                return index
    return None


def _call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {
        str(call["id"]): str(call.get("name"))
        for msg in messages
        if msg["role"] == "assistant"
        for call in msg.get("tool_calls") or ()
        if call.get("id")
    }


def _fill(msg: dict[str, Any], tool: ToolSpan) -> None:
    if not msg.get("content") and tool.result is not None:
        msg["content"] = tool.result
    if tool.call_id and not msg.get("tool_call_id"):
        msg["tool_call_id"] = tool.call_id
    msg.setdefault("name", tool.name)
    if tool.error:
        msg["is_error"] = True
        msg["error"] = tool.error
    if tool.latency_ms is not None:
        msg["latency_ms"] = round(tool.latency_ms, 3)
    stamp = _iso(tool.end)
    if stamp:
        msg.setdefault("timestamp", stamp)


# -- session fields ---------------------------------------------------------------------


def _usage_spans(by_kind: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The spans whose usage is counted: model calls; only when none reports usage, the
    outermost agent spans (an agent span repeats its calls' totals)."""
    calls = by_kind.get("llm", []) + by_kind.get("embedding", [])
    if any(_reports_usage(s) for s in calls):
        return calls
    agents = by_kind.get("agent", [])
    agent_ids = {s.get("span_id") for s in agents}
    return [s for s in agents if s.get("parent_span_id") not in agent_ids]


def _reports_usage(span: dict[str, Any]) -> bool:
    return any(v is not None for v in span_usage(span)) or span_cost(span) is not None


def _tokens(spans: list[dict[str, Any]]) -> list[int | None]:
    sums: list[int | None] = [None, None, None]
    for span in spans:
        for index, value in enumerate(span_usage(span)):
            if value is not None:
                sums[index] = (sums[index] or 0) + value
    return sums


def _cost(spans: list[dict[str, Any]]) -> float | None:
    costs = [c for c in (span_cost(s) for s in spans) if c is not None]
    return round(sum(costs), 10) if costs else None


def _model(spans: list[dict[str, Any]]) -> str | None:
    counts = Counter(m for m in (span_model(s) for s in spans) if m)
    return counts.most_common(1)[0][0][:MAX_NAME] if counts else None


def _agent(spans: list[dict[str, Any]], context: ReadContext) -> str:
    if context.agent:
        return context.agent[:MAX_NAME]
    keys = (("gen_ai.agent.name", attrs), ("agent.name", attrs), ("service.name", _resource))
    for key, source in keys:
        for span in spans:
            value = source(span).get(key)
            if isinstance(value, str) and value.strip() and not value.startswith("unknown_service"):
                return value.strip()[:MAX_NAME]
    return "default"


def _setting(spans: list[dict[str, Any]], key: str) -> str | None:
    for span in spans:
        for source in (attrs(span), _resource(span)):
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:1000]
    return None


def _versions(spans: list[dict[str, Any]]) -> dict[str, str]:
    """Artifact versions the spans name: prompt name + version pairs, OpenInference's
    prompt template version, and tighten's own ``tighten.artifact.<name>.version``."""
    found: dict[str, str] = {}
    for span in spans:
        a = attrs(span)
        for name_key, version_key in PROMPT_KEYS:
            name, version = a.get(name_key), a.get(version_key)
            if isinstance(name, str) and name and version is not None:
                found.setdefault(name[:MAX_NAME], str(version)[:MAX_NAME])
        if a.get("llm.prompt_template.version") is not None:
            found.setdefault("prompt", str(a["llm.prompt_template.version"])[:MAX_NAME])
        for key, value in a.items():
            match = ARTIFACT_KEY.fullmatch(key) if key.startswith("tighten.artifact.") else None
            if match and value is not None:
                found.setdefault(match.group(1)[:MAX_NAME], str(value)[:MAX_NAME])
    return found


def _resource_summary(spans: list[dict[str, Any]]) -> dict[str, Any]:
    for span in spans:
        resource = _resource(span)
        kept = {k: resource[k] for k in RESOURCE_KEYS if isinstance(resource.get(k), str)}
        if kept:
            return kept
    return {}


def _resource(span: dict[str, Any]) -> dict[str, Any]:
    value = span.get("resource")
    return value if isinstance(value, dict) else {}


def _order(span: dict[str, Any]) -> tuple[int, int, str]:
    start, end = nanos(span.get("start_time_unix_nano")), nanos(span.get("end_time_unix_nano"))
    return start, end, str(span.get("span_id"))


def _time(ns: int) -> datetime | None:
    try:
        return EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return None


def _iso(ns: int) -> str | None:
    moment = _time(ns) if ns else None
    return moment.isoformat().replace("+00:00", "Z") if moment else None
