"""Loading sessions from the store as detectors see them, and the agents' baselines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from tighten.signals.metrics import tool_failed
from tighten.signals.model import Baseline, DetectContext, SessionData, Signal
from tighten.store.schema import messages, sessions, signals, tool_calls
from tighten.traces.model import ToolCall

__all__ = ["build_context", "load_sessions", "load_signals"]

MIN_TOOL_CALLS = 5  # calls of a tool before its failure rate counts

FACT_COLUMNS = (
    "session_id", "agent", "started_at", "ended_at", "model", "task_category", "channel",
    "input_tokens", "output_tokens", "total_tokens", "cost_usd", "artifact_versions",
    "attributes",
)  # fmt: skip
TOOL_COLUMNS = (
    "session_id", "message_index", "call_id", "name", "arguments", "result", "error",
    "status", "latency_ms", "started_at",
)  # fmt: skip


def _tool_definitions(attributes: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Tool definitions a trace recorded (OpenAI ``tools`` or Anthropic shapes), as
    ``{"name", "description"}``."""
    raw = (attributes or {}).get("tools")
    found: list[dict[str, Any]] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        inner = item.get("function")
        spec: dict[str, Any] = inner if isinstance(inner, dict) else item
        name = spec.get("name")
        if isinstance(name, str) and name:
            found.append({"name": name, "description": str(spec.get("description") or "")})
    return found


def load_sessions(conn: Connection, session_ids: Sequence[str]) -> list[SessionData]:
    """Sessions with transcripts and joined tool calls, in the order of ``session_ids``."""
    if not session_ids:
        return []
    ids = list(session_ids)
    facts: dict[str, dict[str, Any]] = {
        row["session_id"]: dict(row)
        for row in conn.execute(
            select(*(sessions.c[c] for c in FACT_COLUMNS)).where(sessions.c.session_id.in_(ids))
        ).mappings()
    }
    bodies = dict(
        conn.execute(
            select(messages.c.session_id, messages.c.body).where(messages.c.session_id.in_(ids))
        ).all()
    )
    calls: dict[str, list[ToolCall]] = defaultdict(list)
    query = select(*(tool_calls.c[c] for c in TOOL_COLUMNS)).where(tool_calls.c.session_id.in_(ids))
    for call_row in conn.execute(query.order_by(tool_calls.c.session_id, tool_calls.c.position)):
        sid, index, call_id, name, args, result, error, status, latency, started = call_row
        calls[sid].append(
            ToolCall(name, args or "", index, call_id, result, error, status, latency, started)
        )
    loaded = []
    for sid in ids:
        if sid not in facts:
            continue
        fact = facts[sid]
        loaded.append(
            SessionData(
                session_id=sid,
                agent=fact["agent"],
                messages=bodies.get(sid) or [],
                tool_calls=calls.get(sid, []),
                started_at=fact["started_at"],
                ended_at=fact["ended_at"],
                model=fact["model"],
                task_category=fact["task_category"],
                channel=fact["channel"],
                input_tokens=fact["input_tokens"],
                output_tokens=fact["output_tokens"],
                total_tokens=fact["total_tokens"],
                cost_usd=fact["cost_usd"],
                artifact_versions=fact["artifact_versions"] or {},
                tools=_tool_definitions(fact["attributes"]),
            )
        )
    return loaded


def load_signals(conn: Connection, session_ids: Sequence[str]) -> dict[str, list[Signal]]:
    """The stored per-session signals of each session (every id gets a list), in the
    order they were found."""
    found: dict[str, list[Signal]] = {sid: [] for sid in session_ids}
    query = (
        select(signals)
        .where(signals.c.session_id.in_(list(session_ids)), signals.c.scope == "session")
        .order_by(signals.c.signal_id)
    )
    for row in conn.execute(query).mappings():
        found[row["session_id"]].append(
            Signal(
                type=row["type"],
                polarity=row["polarity"],
                severity=row["severity"],
                description=row["description"],
                detector=row["detector"],
                evidence=tuple(row["evidence"] or ()),
                confidence=row["confidence"],
                target=row["target"],
                quote=row["quote"],
            )
        )
    return found


def build_context(
    conn: Connection, agents: Iterable[str], now: datetime, window_days: int = 30
) -> DetectContext:
    """Baselines (median, MAD) per agent and task category over the trailing window —
    ``messages`` (all messages, system included), ``tool_calls``, ``cost_usd``,
    ``total_tokens``, ``duration_s`` and ``tool_latency_ms:<tool>`` — and each tool's
    failure rate (over at least five calls). Sessions without a start time count as in
    the window."""
    context = DetectContext(now=now)
    since = now - timedelta(days=window_days)
    when = func.coalesce(sessions.c.started_at, sessions.c.ingested_at)
    for agent in sorted(set(agents)):
        query = select(
            sessions.c.task_category,
            sessions.c.message_count,
            sessions.c.tool_call_count,
            sessions.c.cost_usd,
            sessions.c.total_tokens,
            sessions.c.started_at,
            sessions.c.ended_at,
        ).where(sessions.c.agent == agent, when >= since, when <= now)
        values: dict[tuple[str | None, str], list[float]] = defaultdict(list)
        for category, msgs, tools, cost, tokens, started, ended in conn.execute(query):
            sample = {
                "messages": msgs,
                "tool_calls": tools,
                "cost_usd": cost,
                "total_tokens": tokens,
            }
            if started is not None and ended is not None:
                sample["duration_s"] = (ended - started).total_seconds()
            for metric, value in sample.items():
                if value is None:
                    continue
                values[(None, metric)].append(float(value))
                if category is not None:
                    values[(category, metric)].append(float(value))
        for (category, metric), series in values.items():
            baseline = Baseline.of(series)
            if baseline is not None:
                context.baselines[(agent, category, metric)] = baseline
        context.tool_failure_rates.update(_tool_failure_rates(conn, agent, since, now))
        for tool, latencies in _tool_latencies(conn, agent, since, now).items():
            baseline = Baseline.of(latencies)
            if baseline is not None:
                context.baselines[(agent, None, f"tool_latency_ms:{tool}")] = baseline
    return context


def _tool_failure_rates(
    conn: Connection, agent: str, since: datetime, now: datetime
) -> dict[tuple[str, str], float]:
    when = func.coalesce(sessions.c.started_at, sessions.c.ingested_at)
    query = (
        select(tool_calls.c.name, tool_calls.c.status, tool_calls.c.error,
               func.substr(tool_calls.c.result, 1, 300))
        .join(sessions, sessions.c.session_id == tool_calls.c.session_id)
        .where(sessions.c.agent == agent, when >= since, when <= now)
    )  # fmt: skip
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, status, error, head in conn.execute(query):
        counts = totals[name]
        counts[0] += 1
        counts[1] += tool_failed(head, status, error)
    return {
        (agent, name): failed / calls
        for name, (calls, failed) in totals.items()
        if calls >= MIN_TOOL_CALLS
    }


def _tool_latencies(
    conn: Connection, agent: str, since: datetime, now: datetime
) -> dict[str, list[float]]:
    """Latencies of each tool's calls (metric ``tool_latency_ms:<tool>``)."""
    when = func.coalesce(sessions.c.started_at, sessions.c.ingested_at)
    query = (
        select(tool_calls.c.name, tool_calls.c.latency_ms)
        .join(sessions, sessions.c.session_id == tool_calls.c.session_id)
        .where(sessions.c.agent == agent, when >= since, when <= now)
        .where(tool_calls.c.latency_ms.is_not(None))
    )
    found: dict[str, list[float]] = defaultdict(list)
    for name, latency in conn.execute(query):
        found[name].append(float(latency))
    return found
