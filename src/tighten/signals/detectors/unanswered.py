"""Questions the agent could not answer, and requests it refused.

An assistant reply (a message that calls no tool) saying it does not know, cannot find,
has no information, cannot help or is unable to ("I don't have access", "I'm not able
to", "I cannot provide", "I'm afraid I can't") is — unless it only waits for input ("I
can't proceed without your order number"):

* ``refusal`` when the same message gives a rule as the reason (policy, not permitted,
  not eligible, restrictions, non-refundable): severity 0.3, confidence 0.7 — the agent
  may be right, but the owner may want to know what people ask for and cannot get;
* ``unanswered_question`` otherwise: severity 0.5, confidence 0.7 — a gap in knowledge,
  tools or instructions, the raw material of an FAQ.

No target (the detector cannot name the topic without a model); ``quote`` is the person's
message that led to it (the closest before the reply), ``evidence`` = [that message, the
reply]. One signal per person's message and type. Long replies are read at their opening
and closing (see :class:`~tighten.signals.detectors._conversation.Part`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from tighten.signals.detectors._conversation import conversation
from tighten.signals.detectors._cues import INABILITY, POLICY
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import truncate

__all__ = ["DETECTORS", "UnansweredQuestion"]

_SENTENCE_END = re.compile(r"[.!?\n]")
# "I can't proceed without your user id": a request for input, not a gap.
_NEEDS_INPUT = re.compile(
    r"(?: you)?(?:(?: to)? (?:proceed|continue|move forward|go ahead|do (?:that|this)|help"
    r"|assist)(?: you)?)?(?: further| with (?:that|this|it))? (?:without|until)\b"
)


def _sentence(text: str, start: int) -> str:
    """The sentence of ``text`` around position ``start``."""
    begin = max(text.rfind(".", 0, start), text.rfind("!", 0, start), text.rfind("?", 0, start))
    begin = max(begin, text.rfind("\n", 0, start)) + 1
    end = _SENTENCE_END.search(text, start)
    return text[begin : end.end() if end else len(text)].strip()


class UnansweredQuestion:
    """``unanswered_question`` and ``refusal``."""

    name: ClassVar[str] = "rules.unanswered_question"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        view = conversation(session)
        messages = session.messages
        signals: list[Signal] = []
        seen: set[tuple[int | None, str]] = set()
        part = view.assistant
        for index, pos, found in INABILITY.scan(part):
            if not view.is_reply(index, messages[index]):
                continue
            text = part.texts[pos]
            if _NEEDS_INPUT.match(text, found.end()):
                continue
            kind = "refusal" if POLICY.search(text) else "unanswered_question"
            asked = view.previous_human(index)
            if (asked, kind) in seen:
                continue
            seen.add((asked, kind))
            said = _sentence(part.shown[pos], found.start())
            signals.append(self._signal(kind, said, view.texts, asked, index))
        return signals

    def _signal(
        self, kind: str, sentence: str, texts: list[str], asked: int | None, index: int
    ) -> Signal:
        said = truncate(sentence, 120)
        question = truncate(texts[asked], 160) if asked is not None else None
        about = f' to "{truncate(question, 80)}"' if question else ""
        if kind == "refusal":
            description = f'the assistant refused on policy grounds{about}: "{said}"'
            severity = 0.3
        else:
            description = f'the assistant could not answer{about}: "{said}"'
            severity = 0.5
        evidence = (asked, index) if asked is not None else (index,)
        return Signal(
            type=kind,
            polarity="friction",
            severity=severity,
            description=description,
            detector=self.name,
            evidence=evidence,
            confidence=0.7,
            quote=question or said,
        )


DETECTORS = [UnansweredQuestion()]
