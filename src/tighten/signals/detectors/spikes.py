"""Sessions far above the agent's baseline, and timeouts.

``latency_spike``, ``cost_spike`` and ``long_session`` compare one number of the session
with the agent's baseline (:meth:`DetectContext.baseline`, per task category where it
has enough data). A spike needs both a robust z-score of at least 3.5 *and* a value of
at least 1.5x the median (plus a small absolute excess for counts, so that 6 messages
against a median of 3 is not a spike); without a baseline there is no signal.

=================  ==================================================  ===================
type               measured                                            target
=================  ==================================================  ===================
latency_spike      session duration (``duration_s``); per tool call,   ``duration_s`` or
                   ``latency_ms`` against a ``tool_latency_ms:<tool>``  the tool name
                   baseline when the context has one
cost_spike         ``cost_usd``, else ``total_tokens``                 the metric
long_session       message count and tool-call count (the stronger)    the metric
timeout            a tool result or error that says it timed out, or   the tool name
                   a tool call still pending when the session ended
=================  ==================================================  ===================

Severity of a spike is 0.35 at the z threshold and rises towards 1 as z grows
(``0.35 + 0.65 * (1 - 3.5 / z)``: 0.68 at z = 7, 0.84 at z = 14); confidence grows with
the baseline's size (0.6 at 20 sessions, 0.9 from 80). A timeout has severity 0.5 for
one timed-out call, +0.15 per further one (at most 1), confidence 0.9; a call left
pending at the end has severity 0.6 and confidence 0.6 (a trace can also just be cut).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar

from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import error_reason, truncate
from tighten.traces.model import ToolCall

__all__ = ["DETECTORS", "CostSpike", "LatencySpike", "LongSession", "Timeout"]

Z_THRESHOLD = 3.5
MIN_RATIO = 1.5
MIN_EXCESS = {"messages": 4.0, "tool_calls": 3.0, "duration_s": 5.0}
TOOL_LATENCY = "tool_latency_ms:"

_TIMEOUT_WORDS = ("timed out", "timeout", "time out", "time-out", "timed-out", "time_out",
                  "timing out", "deadline exceeded", "<returncode>124<")  # fmt: skip
_TIMEOUT_STATUS = re.compile(r"\b(?:408|504)\b")


@dataclass(frozen=True, slots=True)
class Spike:
    """One number of a session that stands far above the agent's baseline."""

    metric: str
    value: float
    median: float
    z: float
    count: int

    @property
    def severity(self) -> float:
        return min(1.0, 0.35 + 0.65 * (1.0 - Z_THRESHOLD / self.z))

    @property
    def confidence(self) -> float:
        return min(0.9, 0.5 + self.count / 200)

    def describe(self) -> str:
        ratio = self.value / self.median if self.median > 0 else float("inf")
        times = f"{ratio:.1f}x" if ratio != float("inf") else "far above"
        return (
            f"{format_metric(self.metric, self.value)}, {times} the agent's median of "
            f"{format_metric(self.metric, self.median)} (robust z {self.z:.1f})"
        )


def find_spike(
    session: SessionData, context: DetectContext, metric: str, value: float | None
) -> Spike | None:
    """The spike of ``value`` against the agent's ``metric`` baseline, if it is one."""
    if value is None:
        return None
    baseline = context.baseline(session.agent, session.task_category, metric)
    if baseline is None:
        return None
    z = baseline.robust_z(value)
    if z < Z_THRESHOLD or value < MIN_RATIO * baseline.median:
        return None
    if value - baseline.median < MIN_EXCESS.get(metric, 0.0):
        return None
    return Spike(metric, value, baseline.median, z, baseline.count)


def format_metric(metric: str, value: float) -> str:
    if metric == "cost_usd":
        return f"${value:.2f}" if value >= 0.1 else f"${value:.4f}"
    if metric == "duration_s":
        return f"{value:,.0f} s"
    if metric.startswith(TOOL_LATENCY):
        return f"{value:,.0f} ms"
    unit = {"messages": "messages", "tool_calls": "tool calls", "total_tokens": "tokens"}
    return f"{value:,.0f} {unit.get(metric, metric)}"


def _spike_signal(kind: str, detector: str, spike: Spike, what: str, target: str) -> Signal:
    return Signal(
        type=kind,
        polarity="friction",
        severity=round(spike.severity, 3),
        description=f"{what} {spike.describe()}",
        detector=detector,
        confidence=round(spike.confidence, 3),
        target=target,
    )


class LatencySpike:
    """The session, or one tool's calls, took far longer than usual."""

    name: ClassVar[str] = "rules.latency_spike"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        found: list[Signal] = []
        spike = find_spike(session, context, "duration_s", session.duration_s)
        if spike:
            found.append(_spike_signal("latency_spike", self.name, spike, "took", "duration_s"))
        worst: dict[str, tuple[Spike, int]] = {}
        for call in session.tool_calls:
            if call.latency_ms is None:
                continue
            spike = find_spike(session, context, TOOL_LATENCY + call.name, call.latency_ms)
            if spike and (call.name not in worst or spike.z > worst[call.name][0].z):
                worst[call.name] = (spike, call.message_index)
        for tool, (spike, index) in worst.items():
            signal = _spike_signal("latency_spike", self.name, spike, f"{tool} took", tool)
            found.append(replace(signal, evidence=(index,)))
        return found


class CostSpike:
    """The session cost (or, without costs, used tokens) far above usual."""

    name: ClassVar[str] = "rules.cost_spike"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        spike = find_spike(session, context, "cost_usd", session.cost_usd)
        if spike is None and session.cost_usd is None:
            tokens = session.total_tokens
            spike = find_spike(session, context, "total_tokens", tokens)
        if spike is None:
            return []
        return [_spike_signal("cost_spike", self.name, spike, "cost", spike.metric)]


class LongSession:
    """Far more messages or tool calls than usual."""

    name: ClassVar[str] = "rules.long_session"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        spikes = [
            spike
            for spike in (
                find_spike(session, context, "messages", len(session.messages)),
                find_spike(session, context, "tool_calls", len(session.tool_calls)),
            )
            if spike is not None
        ]
        if not spikes:
            return []
        spikes.sort(key=lambda s: s.z, reverse=True)
        signal = _spike_signal("long_session", self.name, spikes[0], "ran", spikes[0].metric)
        if len(spikes) > 1:
            extra = f"; and {spikes[1].describe()}"
            signal = replace(signal, description=signal.description + extra)
        return [signal]


class Timeout:
    """Tool calls that timed out, or were still pending when the session ended."""

    name: ClassVar[str] = "rules.timeout"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        timed_out: dict[str, list[ToolCall]] = {}
        for call in session.tool_calls:
            if timed_out_call(call):
                timed_out.setdefault(call.name, []).append(call)
        found = [self._timeouts(tool, calls) for tool, calls in timed_out.items()]
        found.extend(self._pending(session, set(timed_out)))
        return found

    def _timeouts(self, tool: str, calls: list[ToolCall]) -> Signal:
        text = calls[-1].error or calls[-1].result or ""
        times = "once" if len(calls) == 1 else f"{len(calls)} times"
        return Signal(
            type="timeout",
            polarity="friction",
            severity=round(min(1.0, 0.35 + 0.15 * len(calls)), 3),
            description=f"{tool} timed out {times}: {truncate(text, 100)}",
            detector=self.name,
            evidence=tuple(c.message_index for c in calls),
            confidence=0.9,
            target=tool,
            quote=truncate(text),
        )

    def _pending(self, session: SessionData, seen: set[str]) -> list[Signal]:
        calls = session.tool_calls
        if not calls or all(c.status == "unknown" for c in calls):
            return []  # no results recorded at all: the trace does not carry them
        last = next(
            (i for i in range(len(session.messages) - 1, -1, -1)
             if session.messages[i]["role"] == "assistant"),
            -1,
        )  # fmt: skip
        found = []
        for call in calls:
            if call.status != "unknown" or call.message_index != last or call.name in seen:
                continue
            seen.add(call.name)
            found.append(
                Signal(
                    type="timeout",
                    polarity="friction",
                    severity=0.6,
                    description=f"the session ended while {call.name} was still pending "
                    "(no result was ever recorded)",
                    detector=self.name,
                    evidence=(call.message_index,),
                    confidence=0.6,
                    target=call.name,
                )
            )
        return found


def timed_out_call(call: ToolCall) -> bool:
    """True when the call's error or result says it timed out: an error-looking text
    (:func:`error_reason`) that mentions a timeout, HTTP 408/504, or the ``timeout``
    command's exit code 124 — but not JSON data that merely has a ``timeout`` field."""
    text = call.error or call.result
    if not text:
        return False
    if not _mentions_timeout(text[:300].lower()):
        return False
    reason = error_reason(text)
    if reason == "timeout" and text.lstrip()[:1] in ("{", "["):
        return call.status == "error"  # data with a timeout field, not a timeout
    return reason is not None or call.status == "error"


def _mentions_timeout(head: str) -> bool:
    if ("out" in head and "tim" in head) or "deadline" in head or "124<" in head:
        for word in _TIMEOUT_WORDS:  # plain checks: a regex here costs 100 times more
            if word in head:
                return True
    return ("408" in head or "504" in head) and _TIMEOUT_STATUS.search(head) is not None


DETECTORS = [LatencySpike(), CostSpike(), LongSession(), Timeout()]
