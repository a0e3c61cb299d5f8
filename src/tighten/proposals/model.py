"""Proposals and the cycles that number them.

A :class:`Proposal` is one suggested change, as stored in the ``proposals`` table; a
:class:`Cycle` is one run of the loop over a window, whose proposals are numbered 1..n in
the order the digest shows them (by goal: accuracy, capabilities, cost).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "DEPLOYABILITY",
    "GOALS",
    "IMPACT_METRICS",
    "KIND_TITLES",
    "Cycle",
    "Deployability",
    "Evidence",
    "Goal",
    "Proposal",
    "describe_impact",
    "fingerprint",
]

Goal = Literal["accuracy", "capabilities", "cost"]
Deployability = Literal["auto", "semi", "manual"]
GOALS: tuple[Goal, ...] = ("accuracy", "capabilities", "cost")
DEPLOYABILITY: tuple[Deployability, ...] = ("auto", "semi", "manual")
ARROW = " \u203a "  # between an artifact and its field
EN_DASH = "\u2013"

KIND_TITLES = {
    "add_faq": "Add FAQ",
    "add_playbook_rule": "Add playbook rule",
    "code_change": "Change code",
    "config_change": "Change config",
    "model_switch": "Switch model",
    "remove_duplication": "Remove duplicated text",
    "tool_description": "Sharpen tool description",
}
"""How a known proposal kind reads in a digest; other kinds are spelled out."""

IMPACT_METRICS = {
    "tokens_per_day": ("saves ~{} tokens/day", "costs ~{} more tokens/day"),
    "tokens_per_turn": ("saves ~{} tokens/turn", "costs ~{} more tokens/turn"),
    "cost_usd_per_day": ("saves ~${}/day", "costs ~${} more/day"),
    "failures_avoided": ("~{} failures avoided", "~{} more failures"),
    "escalations_avoided": ("~{} escalations avoided", "~{} more escalations"),
    "questions_answered": ("~{} more questions answered", "~{} fewer questions answered"),
    "sessions_affected": ("{} sessions affected", "{} sessions affected"),
}
"""The known ``expected_impact`` metrics: how a positive and a negative value read."""


def fingerprint(
    kind: str,
    target_artifact: str | None,
    target_field: str | None,
    proposed_value: str | None,
) -> str:
    """A proposal's stable identity across cycles: the SHA-256 of its kind, target and
    proposed value (the rationale and evidence may change; the change itself does not).
    A proposal without a proposed value passes its diff instead."""
    key = json.dumps([kind, target_artifact, target_field, proposed_value], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Evidence:
    """A session that shows the problem, and the indexes of the messages that show it."""

    session_id: str
    message_indexes: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "message_indexes": list(self.message_indexes)}


@dataclass(frozen=True, slots=True)
class Proposal:
    """One suggested change (a row of ``proposals``).

    ``expected_impact`` maps a metric to its expected change, e.g. ``{"tokens_per_day":
    12000, "failures_avoided": 3}``; ``deployability`` says who applies it: ``auto``
    (prompt, playbook or soul edits tighten deploys), ``semi`` (a config change the owner
    applies) or ``manual`` (code, or something to investigate)."""

    proposal_id: int
    cycle_id: int | None
    number: int | None
    agent: str
    kind: str
    goal: Goal | None
    target_artifact: str | None
    target_field: str | None
    current_value: str | None
    proposed_value: str | None
    diff: str | None
    rationale: str | None
    evidence: tuple[Evidence, ...]
    expected_impact: Mapping[str, float] = field(hash=False)
    confidence: float | None
    deployability: Deployability
    status: str
    pattern_key: str | None
    fingerprint: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def target(self) -> str:
        """Where the change applies: the artifact and field (either alone), or ``""``."""
        return ARROW.join(p for p in (self.target_artifact, self.target_field) if p)

    @property
    def title(self) -> str:
        """What changes, in a few words: ``Add FAQ`` for ``add_faq``."""
        return KIND_TITLES.get(self.kind) or spell_out(self.kind)

    @property
    def headline(self) -> str:
        """What changes and where: the title, then the target when there is one."""
        return f"{self.title} — {self.target}" if self.target else self.title

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["evidence"] = [e.as_dict() for e in self.evidence]
        data["expected_impact"] = dict(self.expected_impact)
        return data


@dataclass(frozen=True, slots=True)
class Cycle:
    """One run of the loop over a window (a row of ``cycles``). ``stats`` is free-form;
    the digest shows ``sessions`` (sessions analysed) and ``avg_cost_usd`` when present."""

    cycle_id: int
    agent: str
    window_start: datetime | None
    window_end: datetime | None
    status: str
    stats: Mapping[str, Any] = field(hash=False)
    digest: str | None
    created_at: datetime
    reviewed_at: datetime | None

    @property
    def window_text(self) -> str:
        """The window as an owner reads it: ``Nov 20 06:00 – Nov 22 06:00 UTC``."""  # noqa: RUF002
        start, end = self.window_start, self.window_end
        if start and end:
            return f"{_when(start)} {EN_DASH} {_when(end)} UTC"
        if start or end:
            return f"{'since' if start else 'until'} {_when(start or end)} UTC"  # type: ignore[arg-type]
        return ""

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["stats"] = dict(self.stats)
        return data


def _when(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment:%b} {moment.day} {moment:%H:%M}"


def spell_out(name: str) -> str:
    """``add_llm_judge`` as ``Add LLM judge``."""
    words = " ".join(name.replace("_", " ").replace("-", " ").split())
    words = re.sub(r"\b(faq|llm|api|json|url)s?\b", lambda m: m.group(0).upper(), words)
    return words[:1].upper() + words[1:]


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def describe_impact(impact: Mapping[str, float]) -> str:
    """``{"tokens_per_day": 12000, "failures_avoided": 3}`` as ``saves ~12,000
    tokens/day, ~3 failures avoided``; a metric not in :data:`IMPACT_METRICS` as
    ``success rate +0.05``."""
    out = []
    for key, value in impact.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in IMPACT_METRICS:
            positive, negative = IMPACT_METRICS[key]
            out.append((positive if value >= 0 else negative).format(_number(abs(value))))
        else:
            out.append(f"{spell_out(key).lower()} {'+' if value > 0 else ''}{_number(value)}")
    return ", ".join(out)
