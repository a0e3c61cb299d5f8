"""Per-session metrics: the record the daily reflection reads, stored whatever the
signals are."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from tighten.signals.model import SessionData, Signal
from tighten.signals.text import error_reason

__all__ = ["SessionMetrics", "compute_metrics", "tool_failed"]


@dataclass(slots=True)
class SessionMetrics:
    message_count: int
    user_messages: int
    assistant_messages: int
    tool_calls: int
    tool_failures: int
    escalated: bool
    owner_corrected: bool
    unanswered_questions: int
    sentiment: float | None
    media_types: list[str]
    avg_response_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    duration_s: float | None
    artifact_versions: dict[str, str]
    signal_types: list[str]
    friction_count: int
    delight_count: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        """The columns of ``session_metrics`` (a shallow copy: ``dataclasses.asdict``
        deep-copies and costs more than computing the metrics)."""
        row = {name: getattr(self, name) for name in ROW_FIELDS}
        row["media_types"] = list(self.media_types)
        row["artifact_versions"] = dict(self.artifact_versions)
        row["signal_types"] = list(self.signal_types)
        return row


def tool_failed(result: str | None, status: str, error: str | None = None) -> bool:
    """A tool call failed: the source said so, or its result reads like an error."""
    return status == "error" or bool(error) or (result is not None and bool(error_reason(result)))


def compute_metrics(session: SessionData, signals: list[Signal]) -> SessionMetrics:
    roles = [m["role"] for m in session.messages]
    types = {s.type for s in signals}
    friction = [s for s in signals if s.polarity == "friction"]
    delight = [s for s in signals if s.polarity == "delight"]
    media = sorted({t for m in session.messages for t in m.get("media", ())})
    return SessionMetrics(
        message_count=len(session.messages),
        user_messages=roles.count("user"),
        assistant_messages=roles.count("assistant"),
        tool_calls=len(session.tool_calls),
        tool_failures=sum(tool_failed(c.result, c.status, c.error) for c in session.tool_calls),
        escalated="escalation" in types,
        owner_corrected="correction" in types,
        unanswered_questions=sum(1 for s in signals if s.type == "unanswered_question"),
        sentiment=_sentiment(signals),
        media_types=media,
        avg_response_ms=_avg_response_ms(session.messages),
        input_tokens=session.input_tokens,
        output_tokens=session.output_tokens,
        total_tokens=session.total_tokens,
        cost_usd=session.cost_usd,
        duration_s=session.duration_s,
        artifact_versions=dict(session.artifact_versions),
        signal_types=sorted(types),
        friction_count=len(friction),
        delight_count=len(delight),
    )


def _sentiment(signals: list[Signal]) -> float | None:
    """-1 … 1 from the sentiment signals; ``None`` when there were none."""
    score = 0.0
    seen = False
    for s in signals:
        if s.type == "frustration":
            score -= s.severity
            seen = True
        elif s.type == "satisfaction":
            score += s.severity
            seen = True
    return max(-1.0, min(1.0, score)) if seen else None


def _avg_response_ms(messages: list[dict[str, Any]]) -> float | None:
    """Mean time from a user message to the next assistant message, when timed."""
    gaps: list[float] = []
    asked: datetime | None = None
    for msg in messages:
        stamp = msg.get("timestamp")
        if not stamp:
            continue
        try:
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            continue
        if msg["role"] == "user":
            asked = when
        elif msg["role"] == "assistant" and asked is not None:
            gaps.append((when - asked).total_seconds() * 1000)
            asked = None
    return sum(gaps) / len(gaps) if gaps else None


ROW_FIELDS = tuple(f.name for f in fields(SessionMetrics) if f.name != "extra")
