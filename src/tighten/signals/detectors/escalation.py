"""Conversations handed to a human (or another agent), offered to be, or asked to be.

``escalation`` with three targets:

* the handoff tool's name — a call of a tool named like a transfer, handoff, escalation,
  human or support ticket (``transfer_to_human_agents``, ``escalate``, ``handoff_to_billing``,
  ``create_support_ticket``; money transfers such as ``transfer_funds`` and bookings such as
  ``book_ticket`` are not handoffs); severity 0.6, confidence 0.9 (a tool call is
  unambiguous, its reason is not).
* ``human_request`` — a person asks for a human, agent, manager, representative or real
  person ("can I speak to a manager", "transfer me"); severity 0.6, confidence 0.8. Once
  per session, with every such message as evidence.
* ``assistant_handoff`` — only when no handoff tool was called: the assistant says it
  will bring in, or offers, a human ("transfer you to", "escalate", "a human agent will");
  severity 0.4, confidence 0.6 (an offer is not always taken up).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import ClassVar

from tighten.signals.detectors._conversation import Attempt, conversation
from tighten.signals.detectors._cues import HUMAN_REQUEST, Cue
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import truncate

__all__ = ["DETECTORS", "Escalation"]

_HANDOFF_TOOL = re.compile(
    r"escalat|hand_?off|hand_?over|human|live_?agent|agent_?transfer"
    r"|(?:create|open|file|raise|submit)_?(?:a_?)?(?:support_?)?ticket|support_?ticket"
    r"|transfer_?to_?(?!account|wallet|bank|savings|checking|card)"
    r"|transfer_?(?:call|chat|conversation|session)",
    re.IGNORECASE,
)
_NOT_HANDOFF = re.compile(r"transfer_?(?:funds|money|balance|amount|file|data)", re.IGNORECASE)
_ASSISTANT_HANDOFF = Cue(
    r"\b(?:bring in|connect you (?:with|to)|put you through to|hand (?:you|this|it) (?:off|over)"
    r"|pass (?:you|this) (?:on|along) to) (?:a |an |our |the )?(?:human|live|real|specialist"
    r"|supervisor|manager|representative|colleague|team|support|agent)"
    r"|\btransfer(?:ring)? you(?:r (?:call|chat|request))? to\b|\bescalat(?:e|ing|ed)\b"
    r"|\ba human (?:agent|representative|colleague) (?:will|can|should)\b",
    ("bring in", "connect you", "put you through", "hand ", "pass ", "transfer", "escalat",
     "a human"),
)  # fmt: skip
_MAX_EVIDENCE = 20


@functools.lru_cache(maxsize=4096)
def _is_handoff(tool: str) -> bool:
    """Whether a tool hands the conversation off (cached: tool names repeat)."""
    return _HANDOFF_TOOL.search(tool) is not None and _NOT_HANDOFF.search(tool) is None


class Escalation:
    """``escalation``: handoff tools, a person asking for a human, the assistant offering
    one."""

    name: ClassVar[str] = "rules.escalation"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        view = conversation(session)
        signals = [self._handoff(attempt) for attempt in view.attempts if _is_handoff(attempt.tool)]
        handed_off = bool(signals)
        asked = HUMAN_REQUEST.matching(view.people)
        if asked:
            quote = truncate(view.texts[asked[0]], 160)
            what = f'the user asked for a human: "{truncate(quote, 100)}"'
            evidence = tuple(asked[:_MAX_EVIDENCE])
            signals.append(self._signal(what, evidence, "human_request", quote, 0.6, 0.8))
        offered = [] if handed_off else _ASSISTANT_HANDOFF.matching(view.assistant)
        if offered:
            quote = truncate(view.texts[offered[0]], 160)
            what = f'the assistant offered a handoff: "{truncate(quote, 100)}"'
            evidence = tuple(offered[:_MAX_EVIDENCE])
            signals.append(self._signal(what, evidence, "assistant_handoff", quote, 0.4, 0.6))
        return signals

    def _handoff(self, attempt: Attempt) -> Signal:
        evidence: tuple[int, ...] = (attempt.call_index,)
        if attempt.result_index is not None:
            evidence += (attempt.result_index,)
        arguments = truncate(attempt.arguments, 80)
        what = f"the agent handed the conversation off with {attempt.tool}({arguments})"
        quote = truncate(attempt.arguments, 160)
        return self._signal(what, evidence, attempt.tool, quote, 0.6, 0.9)

    def _signal(
        self,
        description: str,
        evidence: tuple[int, ...],
        target: str,
        quote: str,
        severity: float,
        confidence: float,
    ) -> Signal:
        return Signal(
            type="escalation",
            polarity="friction",
            severity=severity,
            description=description,
            detector=self.name,
            evidence=evidence,
            confidence=confidence,
            target=target,
            quote=quote,
        )


DETECTORS = [Escalation()]
