"""Delight: sessions that went better than the agent's usual.

``efficient_finish``: the session needed far fewer messages or tool calls, or cost less
(``cost_usd``, else ``total_tokens``), than the agent's baseline — robust z ≤ -2 *and* at
most 0.6x the median — and it really finished: no tool result that looks like a failure
(:func:`~tighten.signals.text.failure_reason`: error shapes, shell and test failures),
the agent's last message reads as a completion (done, confirmed, booked, updated, here
is, ...) and not an apology or refusal, and the user's last reply is no complaint. A
short session in which the user gave up is not delight. When the agent usually calls
tools, the session must have called at least one (a "done" without any action is not a
finish). Severity ``1 - value / median`` of the strongest metric (0.4 at 0.6x the
median); confidence 0.6, 0.7 from 100 baseline sessions. Target: that metric.

``first_try_success``: a tool that usually fails for this agent
(``context.tool_failure_rates[(agent, tool)] ≥ 0.3``) succeeded on its first call in the
session (an ``ok`` result with no error-looking text). Severity: the tool's failure rate;
confidence 0.8. Target: the tool name.

Explicit thanks and praise are the sentiment detector's, not repeated here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import failure_reason, truncate

__all__ = ["DETECTORS", "EfficientFinish", "FirstTrySuccess"]

MAX_Z = -2.0
MAX_RATIO = 0.6
MIN_MEDIAN = {"messages": 4.0, "tool_calls": 2.0}
HIGH_FAILURE_RATE = 0.3

_COMPLETION = re.compile(
    r"\b(?:done|complete[d]?|confirmed|booked|updated|here(?: is|'s| are)|successfully"
    r"|has been|have been|all set|finished|created|sent|scheduled|resolved|fixed|published"
    r"|merged|saved|cancell?ed|refunded|processed|submitted|deployed|is (?:now )?ready)\b",
    re.IGNORECASE,
)
_NOT_DONE = re.compile(
    r"\b(?:sorry|unfortunately|apolog\w*|unable|can(?:no|')?t|cannot|not able|not possible"
    r"|denied|declined|failed|error)\b",
    re.IGNORECASE,
)
_COMPLAINT = re.compile(
    r"\b(?:not (?:working|helpful|what i (?:asked|wanted)|satisfied|happy)"
    r"|(?:doesn't|does not|didn't|did not|still doesn't|isn't|is not) work\w*"
    r"|still (?:not|broken|wrong|no)\b|wrong|useless|frustrat\w*|annoy\w*|ridiculous|terrible"
    r"|awful|horrible|unacceptable|waste of (?:time|money)|forget it|never ?mind|give up"
    r"|giving up|i quit|disappointed|(?:speak|talk) (?:to|with) (?:a |an )?(?:human|person"
    r"|agent|manager|representative|supervisor))\b|👎",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Low:
    metric: str
    value: float
    median: float
    count: int

    @property
    def ratio(self) -> float:
        return self.value / self.median


class EfficientFinish:
    """The session finished the job with far less effort than usual."""

    name: ClassVar[str] = "rules.efficient_finish"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        lows = _lows(session, context)
        if not lows or _skipped_tools(session, context):
            return []
        final = _finish(session.messages)
        if final is None or any(_failed(call.error, call.result) for call in session.tool_calls):
            return []
        best = min(lows, key=lambda low: low.ratio)
        index, text = final
        usual = ", ".join(
            f"{_fmt(low.metric, low.value)} vs a median of {_fmt(low.metric, low.median)}"
            for low in lows
        )
        return [
            Signal(
                type="efficient_finish",
                polarity="delight",
                severity=round(min(1.0, 1.0 - best.ratio), 3),
                description=f'finished in {usual}, ending with "{truncate(text, 80)}"',
                detector=self.name,
                evidence=(index,),
                confidence=0.7 if best.count >= 100 else 0.6,
                target=best.metric,
                quote=truncate(text),
            )
        ]


def _lows(session: SessionData, context: DetectContext) -> list[_Low]:
    """The session's metrics that lie far below the agent's baseline."""
    cost = ("cost_usd", session.cost_usd)
    if session.cost_usd is None:
        cost = ("total_tokens", session.total_tokens)
    measured = [("messages", len(session.messages)), ("tool_calls", len(session.tool_calls)), cost]
    lows: list[_Low] = []
    for metric, value in measured:
        if value is None:
            continue
        baseline = context.baseline(session.agent, session.task_category, metric)
        if baseline is None or baseline.median < max(MIN_MEDIAN.get(metric, 0.0), 1e-12):
            continue
        if baseline.robust_z(value) <= MAX_Z and value <= MAX_RATIO * baseline.median:
            lows.append(_Low(metric, float(value), baseline.median, baseline.count))
    return lows


def _skipped_tools(session: SessionData, context: DetectContext) -> bool:
    """The agent usually calls tools, and this session called none."""
    if session.tool_calls:
        return False
    baseline = context.baseline(session.agent, session.task_category, "tool_calls")
    return baseline is not None and baseline.median >= 1


def _finish(messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The agent's closing message when the session reads as finished: a completion, no
    apology or refusal, and the user's last message (when it answered the agent) is no
    complaint."""
    final = next(
        (i for i in range(len(messages) - 1, -1, -1)
         if messages[i]["role"] == "assistant" and messages[i]["content"]),
        None,
    )  # fmt: skip
    if final is None:
        return None
    text: str = messages[final]["content"]
    if not _COMPLETION.search(text) or _NOT_DONE.search(text):
        return None
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    answered = users and any(m["role"] == "assistant" for m in messages[: users[-1]])
    if answered and _COMPLAINT.search(messages[users[-1]]["content"]):
        return None
    return final, text


def _failed(error: str | None, result: str | None) -> bool:
    return bool(error) or (result is not None and failure_reason(result) is not None)


def _fmt(metric: str, value: float) -> str:
    if metric == "cost_usd":
        return f"${value:.4f}" if value < 0.1 else f"${value:.2f}"
    unit = {"messages": "messages", "tool_calls": "tool calls", "total_tokens": "tokens"}
    return f"{value:,.0f} {unit[metric]}"


class FirstTrySuccess:
    """A tool that usually fails for this agent worked on its first call."""

    name: ClassVar[str] = "rules.first_try_success"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        rates = context.tool_failure_rates
        if not rates:
            return []
        found: list[Signal] = []
        seen: set[str] = set()
        for call in session.tool_calls:
            if call.name in seen:
                continue
            seen.add(call.name)
            rate = rates.get((session.agent, call.name), 0.0)
            if rate < HIGH_FAILURE_RATE or call.status != "ok":
                continue
            if _failed(call.error, call.result):
                continue
            found.append(
                Signal(
                    type="first_try_success",
                    polarity="delight",
                    severity=round(min(1.0, rate), 3),
                    description=f"{call.name} succeeded on its first call although it fails "
                    f"{rate:.0%} of the time for this agent",
                    detector=self.name,
                    evidence=(call.message_index,),
                    confidence=0.8,
                    target=call.name,
                )
            )
        return found


DETECTORS = [EfficientFinish(), FirstTrySuccess()]
