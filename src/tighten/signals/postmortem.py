"""Post-mortem of one session: its timeline, the most likely decisive step (the message
where it went wrong) and the responsible agent or role, with ranked alternatives.

The decisive step is where the agent *decided* wrongly, so a signal's evidence is mapped
back to the assistant message behind it: a failed tool result points to the call that
produced it; a user's correction or complaint points to the assistant message before it.
Earlier problems weigh more (later friction is often a consequence), and problems that
were never recovered weigh most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tighten.signals.model import SessionData, Signal
from tighten.signals.text import truncate

__all__ = ["Candidate", "PostMortem", "postmortem"]

# How strongly each signal type points at a decisive step (unknown friction: 0.5).
TYPE_WEIGHT = {
    "tool_failure_unrecovered": 1.0,
    "error_loop": 0.9,
    "unanswered_question": 0.85,
    "quality_rejection": 0.85,
    "tool_failure": 0.7,
    "correction": 0.7,
    "refusal": 0.6,
    "escalation": 0.6,
    "stagnation": 0.55,
    "repeated_request": 0.5,
    "context_thrashing": 0.45,
    "frustration": 0.4,
    "unhandled_media": 0.8,
}


@dataclass(frozen=True)
class Candidate:
    step: int
    agent: str
    score: float
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "agent": self.agent,
            "score": round(self.score, 4),
            "reasons": list(self.reasons),
        }


@dataclass
class PostMortem:
    session_id: str
    timeline: list[dict[str, Any]]
    decisive: Candidate | None
    alternatives: list[Candidate] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "decisive_step": self.decisive.step if self.decisive else None,
            "responsible": self.decisive.agent if self.decisive else None,
            "decisive": self.decisive.as_dict() if self.decisive else None,
            "alternatives": [c.as_dict() for c in self.alternatives],
            "timeline": self.timeline,
        }


def _speaker(msg: dict[str, Any]) -> str:
    return str(msg.get("name") or msg["role"])


def _decision_step(messages: list[dict[str, Any]], index: int) -> int:
    """The assistant message behind the evidence at ``index``."""
    if not 0 <= index < len(messages):
        return max(0, min(index, len(messages) - 1))
    if messages[index]["role"] == "assistant":
        return index
    for back in range(index - 1, -1, -1):
        if messages[back]["role"] == "assistant":
            return back
    return index


def postmortem(session: SessionData, signals: list[Signal], top: int = 5) -> PostMortem:
    msgs = session.messages
    marks: dict[int, list[str]] = {}
    scores: dict[int, float] = {}
    reasons: dict[int, list[str]] = {}
    n = max(1, len(msgs))
    for sig in signals:
        for index in sig.evidence:
            marks.setdefault(index, []).append(sig.type)
        if sig.polarity != "friction" or not sig.evidence or not msgs:
            continue
        step = _decision_step(msgs, min(sig.evidence))
        earliness = 1.0 - 0.5 * (step / n)
        weight = TYPE_WEIGHT.get(sig.type, 0.5) * sig.severity * sig.confidence * earliness
        scores[step] = scores.get(step, 0.0) + weight
        reasons.setdefault(step, []).append(f"{sig.type}: {sig.description}")
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    candidates = [
        Candidate(step, _speaker(msgs[step]), score, tuple(reasons[step]))
        for step, score in ranked[: top + 1]
    ]
    timeline = [
        {
            "index": i,
            "role": m["role"],
            "speaker": _speaker(m),
            "summary": truncate(m["content"] or _calls(m), 100),
            "signals": sorted(set(marks.get(i, []))),
        }
        for i, m in enumerate(msgs)
    ]
    decisive = candidates[0] if candidates else _fallback(msgs)
    return PostMortem(session.session_id, timeline, decisive, candidates[1:])


def _calls(msg: dict[str, Any]) -> str:
    return ", ".join(
        f"→ {c['name']}({truncate(c['arguments'], 60)})" for c in msg.get("tool_calls") or []
    )


def _fallback(msgs: list[dict[str, Any]]) -> Candidate | None:
    """Without friction: the last assistant message, weakly."""
    for i in range(len(msgs) - 1, -1, -1):
        if msgs[i]["role"] == "assistant":
            return Candidate(i, _speaker(msgs[i]), 0.0, ("no friction found; last agent turn",))
    return None
