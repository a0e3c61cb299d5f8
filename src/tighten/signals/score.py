"""The friction score: an estimate of the probability that a session failed its user.

A logistic model over features of the session's signals and metrics. The default weights
ship with tighten and encode what friction usually means; ``tighten calibrate`` refits
them on sessions whose outcome is known, so each loop learns what friction means for its
agent. A session's own outcome never feeds its own score: calibrated scores of labelled
sessions come from cross-fitting (a model fitted without that session's fold).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tighten.signals.metrics import SessionMetrics
from tighten.signals.model import Signal

__all__ = ["DEFAULT_MODEL", "FEATURES", "ScoreModel", "features", "sigmoid"]

# Signal types whose severity-weighted count is a feature; others go to "other_friction".
SIGNAL_FEATURES = (
    "tool_failure",
    "tool_failure_unrecovered",
    "error_loop",
    "context_thrashing",
    "stagnation",
    "escalation",
    "unanswered_question",
    "refusal",
    "correction",
    "repeated_request",
    "frustration",
    "latency_spike",
    "cost_spike",
    "long_session",
    "timeout",
    "quality_rejection",
    "unhandled_media",
    "satisfaction",
    "efficient_finish",
    "first_try_success",
)
METRIC_FEATURES = (
    "log_messages",
    "log_user_messages",
    "log_tool_calls",
    "tool_failure_share",
    "other_friction",
    "other_delight",
)
FEATURES = SIGNAL_FEATURES + METRIC_FEATURES


def features(metrics: SessionMetrics, signals: Sequence[Signal]) -> dict[str, float]:
    """The score's inputs for one session (a stable, documented set of numbers)."""
    values = dict.fromkeys(FEATURES, 0.0)
    for s in signals:
        weight = s.severity * s.confidence
        if s.type in values:
            values[s.type] = min(3.0, values[s.type] + weight)
        elif s.polarity == "friction":
            values["other_friction"] = min(3.0, values["other_friction"] + weight)
        else:
            values["other_delight"] = min(3.0, values["other_delight"] + weight)
    values["log_messages"] = math.log1p(metrics.message_count)
    values["log_user_messages"] = math.log1p(metrics.user_messages)
    values["log_tool_calls"] = math.log1p(metrics.tool_calls)
    if metrics.tool_calls:
        values["tool_failure_share"] = metrics.tool_failures / metrics.tool_calls
    return values


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass(frozen=True)
class ScoreModel:
    """Weights over :data:`FEATURES` (after optional standardisation) and an intercept."""

    weights: Mapping[str, float]
    intercept: float
    means: Mapping[str, float] = field(default_factory=dict)
    scales: Mapping[str, float] = field(default_factory=dict)
    source: str = "default"

    def score(self, values: Mapping[str, float]) -> float:
        total = self.intercept
        for name, weight in self.weights.items():
            x = values.get(name, 0.0)
            if self.scales:
                x = (x - self.means.get(name, 0.0)) / (self.scales.get(name) or 1.0)
            total += weight * x
        return sigmoid(total)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScoreModel:
        scaling = row.get("scaling") or {}
        return cls(
            weights=dict(zip(row["features"], row["coefficients"], strict=True)),
            intercept=float(row["intercept"]),
            means=scaling.get("means", {}),
            scales=scaling.get("scales", {}),
            source=f"calibration {row['calibration_id']}",
        )


# Default weights, set by judgement rather than fitted to any one data set: a session
# with no friction scores about 0.25; an unrecovered tool failure, an error loop or an
# explicitly frustrated user moves it towards 0.5; delight pulls it down. Long
# conversations carry some risk on their own (more turns, more chances to go wrong).
# Evidence that is often *correct* behaviour weighs little: a refusal is usually the
# policy working, a handoff to a human is sometimes the right answer, and a "thanks" is
# as often politeness as satisfaction. `tighten calibrate` learns the real weights of an
# agent from its outcomes.
DEFAULT_MODEL = ScoreModel(
    weights={
        "tool_failure": 0.5,
        "tool_failure_unrecovered": 0.9,
        "error_loop": 0.8,
        "context_thrashing": 0.4,
        "stagnation": 0.6,
        "escalation": 0.2,
        "unanswered_question": 0.7,
        "refusal": 0.05,
        "correction": 0.7,
        "repeated_request": 0.6,
        "frustration": 1.0,
        "latency_spike": 0.3,
        "cost_spike": 0.3,
        "long_session": 0.5,
        "timeout": 0.6,
        "quality_rejection": 0.9,
        "unhandled_media": 0.8,
        "other_friction": 0.4,
        "satisfaction": -0.15,
        "efficient_finish": -0.6,
        "first_try_success": -0.05,
        "other_delight": -0.3,
        "log_messages": 0.6,
        "log_user_messages": 0.2,
        "log_tool_calls": 0.0,
        "tool_failure_share": 0.8,
    },
    intercept=-2.6,
)
