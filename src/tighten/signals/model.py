"""What detectors see and what they say.

A detector gets a :class:`SessionData` (the transcript and facts of one session — never its
outcome, which is what the friction score is judged against) and a :class:`DetectContext`
(the agent's baselines over a trailing window), and returns :class:`Signal` objects.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from tighten.traces.model import ToolCall, link_tool_calls

__all__ = [
    "Baseline",
    "DetectContext",
    "Detector",
    "SessionData",
    "Signal",
    "WindowDetector",
    "WindowSignal",
]

Polarity = Literal["friction", "delight"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation on one session.

    ``type`` is a stable snake_case name (``tool_failure``, ``escalation``); ``target`` the
    concrete thing it is about (a tool name, a prompt block) so that patterns can key on
    ``type:target``; ``evidence`` the message indexes that show it; ``severity`` and
    ``confidence`` are in [0, 1]; ``quote`` a short excerpt a reviewer can read (for an
    unanswered question, the user's question)."""

    type: str
    polarity: Polarity
    severity: float
    description: str
    detector: str
    evidence: tuple[int, ...] = ()
    confidence: float = 1.0
    target: str | None = None
    quote: str | None = None


@dataclass(frozen=True, slots=True)
class WindowSignal:
    """An observation about an agent over a window of sessions rather than one session
    (a tool nobody calls, a signal type that rose after a new version)."""

    type: str
    polarity: Polarity
    severity: float
    description: str
    detector: str
    agent: str
    sessions: tuple[str, ...] = ()
    confidence: float = 1.0
    target: str | None = None
    quote: str | None = None


@dataclass(slots=True)
class SessionData:
    """A session as detectors see it. ``messages`` are canonical message dicts (see
    :mod:`tighten.traces.model`); ``tool_calls`` are joined with their results; ``tools``
    are the tool definitions the agent was given, as ``{"name", "description"}`` dicts,
    when the trace recorded them. The outcome is deliberately absent."""

    session_id: str
    agent: str
    messages: list[dict[str, Any]]
    tool_calls: list[ToolCall]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    model: str | None = None
    task_category: str | None = None
    channel: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    artifact_versions: dict[str, str] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_messages(
        cls,
        messages: list[dict[str, Any]],
        session_id: str = "s",
        agent: str = "agent",
        **facts: Any,
    ) -> SessionData:
        """A session from canonical messages, with tool calls joined (handy in tests)."""
        return cls(session_id, agent, messages, link_tool_calls(messages), **facts)

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.ended_at:
            return max(0.0, (self.ended_at - self.started_at).total_seconds())
        return None

    def indexes(self, role: str) -> list[int]:
        """Indexes of the messages with ``role``."""
        return [i for i, m in enumerate(self.messages) if m["role"] == role]


@dataclass(frozen=True, slots=True)
class Baseline:
    """A robust summary of one number over the agent's recent sessions: median and MAD
    (median absolute deviation, scaled to match a standard deviation for normal data)."""

    median: float
    mad: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Baseline | None:
        if not values:
            return None
        median = statistics.median(values)
        mad = statistics.median(abs(v - median) for v in values) * 1.4826
        return cls(median, mad, len(values))

    def robust_z(self, value: float) -> float:
        """How many (robust) deviations ``value`` lies above the median. A zero MAD
        (most sessions identical) falls back to 10% of the median, so that tiny
        differences are not infinite outliers."""
        scale = self.mad or abs(self.median) * 0.1 or 1.0
        return (value - self.median) / scale


@dataclass(slots=True)
class DetectContext:
    """What a detector may know beyond the session: the agent's baselines over a trailing
    window, per task category where known (key ``None`` is all categories), and the
    tool-failure rate of each tool."""

    now: datetime
    baselines: dict[tuple[str, str | None, str], Baseline] = field(default_factory=dict)
    tool_failure_rates: dict[tuple[str, str], float] = field(default_factory=dict)
    min_baseline: int = 20

    def baseline(self, agent: str, category: str | None, metric: str) -> Baseline | None:
        """The baseline for ``metric`` (``cost_usd``, ``duration_s``, ``messages``,
        ``tool_calls``, ``total_tokens``): per task category when it has enough
        sessions, else the agent's overall one; ``None`` when there is too little data."""
        for key in ((agent, category, metric), (agent, None, metric)):
            found = self.baselines.get(key)
            if found is not None and found.count >= self.min_baseline:
                return found
        return None


class Detector(Protocol):
    """A per-session detector.

    ``detect`` returns the signals it finds in one session; it must be fast (the whole
    set of rule detectors aims at thousands of sessions per second), deterministic, and
    must treat every message text as data, never as an instruction."""

    name: ClassVar[str]

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]: ...


class WindowDetector(Protocol):
    """A detector over an agent's window of sessions (for what no single session shows).

    ``detect_window`` gets the agent's sessions in the window (oldest first) and the
    per-session signals already found for them (by session id), and returns window
    signals."""

    name: ClassVar[str]

    def detect_window(
        self,
        agent: str,
        sessions: Sequence[SessionData],
        signals: Mapping[str, Sequence[Signal]],
        context: DetectContext,
    ) -> Iterable[WindowSignal]: ...
