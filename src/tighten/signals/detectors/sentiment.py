"""How the person felt: frustration along the way, satisfaction at the end.

Only messages written by a person count (not tool observations), with control markers
such as ``###STOP###`` removed first.

``frustration`` (friction), once per kind and session:

* ``explicit`` — frustrated words ("ridiculous", "useless", "frustrating", "waste of
  time", "are you even", "this is the third time", "still doesn't work"); severity 0.7
  (0.8 in 2+ messages), confidence 0.8.
* ``shouting`` — three or more words in capitals, "!!!", "?!"; severity 0.5, confidence 0.6.
* ``abrupt_ending`` — the session ends on a short message of the person (no thanks in it)
  right after an unresolved tool failure or a refusal, or the person leaves with "forget
  it", "never mind", "bye" after such friction or after sounding frustrated; severity 0.5
  (0.6 when leaving), confidence 0.5 (0.7).

``satisfaction`` (delight), from the last two messages of the person with text, the last
weighing twice as much: praise ("perfect", "that worked", "exactly what I needed") scores
1, thanks 0.6, thanks attached to a further request 0.3; a score of 0.5 is needed. A last
message that complains after its thanks ("thanks, but it still doesn't work"), sounds
sarcastic or resigned ("thanks anyway"), is frustrated or asks for a human means no
satisfaction. Target ``praise`` (severity 0.7, confidence 0.8) or ``thanks`` (severity
0.4, confidence 0.6); confidence drops by 40% when a failure or refusal stayed
unresolved, since people thank politely even then.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from typing import ClassVar

from tighten.signals.detectors._conversation import Conversation, conversation
from tighten.signals.detectors._cues import HUMAN_REQUEST, INABILITY, Cue
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import truncate

__all__ = ["DETECTORS", "Frustration", "Satisfaction"]

_FRUSTRATED = Cue(
    r"\b(?:ridiculous|useless|frustrat\w*|annoy(?:ed|ing)|terrible|horrible|awful|pathetic"
    r"|unacceptable|incompetent|stupid|absurd|outrageous|wtf|ffs)\b"
    r"|\bwast(?:e|ing) (?:of )?(?:my |our )?time\b"
    r"|\bare you (?:even|serious|kidding|listening|reading)\b"
    r"|\bthis is the (?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time\b"
    r"|\bhow many times\b|\bfed up\b|\bsick (?:and tired )?of\b|\bwhat the (?:hell|heck|fuck)\b"
    r"|\b(?:still|again) (?:not working|doesn't work|does not work|broken|failing|wrong)\b"
    r"|\bnot helpful\b|\bno help at all\b|\bfor (?:god's|heaven's|pete's) sake\b"
    r"|\bseriously\?|\bagain\?!",
    ("ridiculous", "useless", "frustrat", "annoy", "terrible", "horrible", "awful", "pathetic",
     "unacceptable", "incompetent", "stupid", "absurd", "outrageous", "wtf", "ffs", "wast",
     "are you", "this is the", "how many times", "fed up", "sick", "what the", "still",
     "again", "helpful", "no help", "sake", "seriously"),
)  # fmt: skip
_CAPS = re.compile(r"\b[A-Z][A-Z']+(?:[ \t,]+[A-Z][A-Z']+){2,}\b")
_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_MIN_UPPER = 10  # three shouted words, two of them of four letters or more
_LEAVING = re.compile(
    r"\b(?:forget (?:it|about it)|never ?mind|nvm|bye|goodbye|i give up|i'm done|whatever"
    r"|don't bother|i'll (?:do it|figure it out|handle it) myself|i'll go elsewhere)\b"
)
_PRAISE = re.compile(
    r"\b(?:perfect|awesome|excellent|amazing|wonderful|brilliant|fantastic|superb"
    r"|outstanding|(?:that|it|this) (?:worked|works now|did it|did the trick)|works now"
    r"|exactly what i (?:needed|wanted|was looking for)|you(?:'re| are) (?:the best"
    r"|a lifesaver|amazing|awesome|great)|lifesaver|love it|great job|well done|nice work"
    r"|good job|spot on|problem solved|all sorted)\b"
)
_THANKS = re.compile(
    r"\b(?:thank(?:s| you)|thx|cheers|much appreciated|i appreciate (?:it|that|your|you|the)"
    r"|(?:really|truly) appreciate|grateful)\b"
)
_NOT_DELIGHT = re.compile(
    r"thanks? (?:you )?for nothing|gee,? thanks|thanks? (?:you )?anyway|thanks though"
    r"|\bno,? thank(?:s| you)\b(?! for)"
)
_COMPLAINT = re.compile(
    r"\bbut\b|\bhowever\b|\bstill\b|\bunfortunately\b|\bproblem\b|\bissue\b|\berror\b"
    r"|\bwrong\b|\b(?:doesn't|does not|didn't|did not|isn't|is not|won't|can't|cannot)"
    r" (?:work|help|fix|solve)|\bnot (?:working|fixed|solved|resolved|what i)"
)
_REQUEST = re.compile(r"\?|\b(?:please|can you|could you|would you|also)\b")
_SHORT_CHARS = 80
_MIN_DELIGHT = 0.5
_PRAISE_SCORE, _THANKS_SCORE, _REQUEST_THANKS_SCORE = 1.0, 0.6, 0.3
_MAX_EVIDENCE = 20


def _shouting(text: str) -> bool:
    """ "!!!", "?!", or three or more words in capitals (two of them 4+ letters long, so
    that codes such as "JFK LAX SFO" do not count)."""
    if "!!!" in text or "?!" in text or "!?" in text:
        return True
    raw = text.encode()
    if len(raw) - len(raw.translate(None, _UPPER)) < _MIN_UPPER:
        return False
    for found in _CAPS.finditer(text):
        shouted = found.group().replace(",", " ").split()
        if sum(len(word) >= 4 for word in shouted) >= 2:
            return True
    return False


def _unresolved(view: Conversation, before: int) -> int | None:
    """Where an unresolved failure or refusal shows before message ``before``: a failed
    call that no later call of the same tool redeemed, or the last assistant reply
    saying it cannot help."""
    for attempt in view.attempts:
        if attempt.failed and attempt.call_index < before and not view.resolved(attempt):
            return attempt.result_index or attempt.call_index
    last_reply = bisect.bisect_left(view.said, before) - 1
    if last_reply >= 0 and INABILITY.search(view.assistant.texts[last_reply]):
        return view.said[last_reply]
    return None


class Frustration:
    """``frustration``: frustrated words, shouting, an abrupt ending."""

    name: ClassVar[str] = "rules.frustration"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        view = conversation(session)
        explicit = _FRUSTRATED.matching(view.people)
        shouting = [i for i in view.human if _shouting(view.texts[i])]
        signals = []
        if explicit:
            severity = 0.8 if len(explicit) > 1 else 0.7
            signals.append(self._signal("explicit", view, explicit, severity, 0.8))
        if shouting:
            signals.append(self._signal("shouting", view, shouting, 0.5, 0.6))
        ending = self._abrupt_ending(session, view, explicit)
        if ending is not None:
            signals.append(ending)
        return signals

    def _signal(
        self, kind: str, view: Conversation, where: list[int], severity: float, confidence: float
    ) -> Signal:
        quote = truncate(view.texts[where[0]], 160)
        return Signal(
            type="frustration",
            polarity="friction",
            severity=severity,
            description=f'the user sounded frustrated ({kind}): "{truncate(quote, 100)}"',
            detector=self.name,
            evidence=tuple(where[:_MAX_EVIDENCE]),
            confidence=confidence,
            target=kind,
            quote=quote,
        )

    def _abrupt_ending(
        self, session: SessionData, view: Conversation, frustrated: list[int]
    ) -> Signal | None:
        last = len(session.messages) - 1
        if not view.human or view.human[-1] != last:
            return None
        low = view.lowers[last]
        if _THANKS.search(low) or _PRAISE.search(low):
            return None
        leaving = _LEAVING.search(low) is not None
        if not leaving and len(low) > _SHORT_CHARS:
            return None
        friction = _unresolved(view, last)
        if friction is None and leaving:
            friction = next((i for i in frustrated if i < last), None)
        if friction is None:
            return None
        said = f'"{truncate(view.texts[last], 80)}"' if view.texts[last] else "nothing more"
        return Signal(
            type="frustration",
            polarity="friction",
            severity=0.6 if leaving else 0.5,
            description=f"the user left with {said} right after unresolved friction",
            detector=self.name,
            evidence=(friction, last),
            confidence=0.7 if leaving else 0.5,
            target="abrupt_ending",
            quote=truncate(view.texts[last], 160) or None,
        )


def _delight(low: str) -> tuple[float, int]:
    """How much one message of the person says they are satisfied, and where the thanks
    or praise starts (-1 when there is none)."""
    praise = _PRAISE.search(low)
    thanks = _THANKS.search(low)
    starts = [m.start() for m in (praise, thanks) if m is not None]
    if praise:
        return _PRAISE_SCORE, min(starts)
    if thanks:
        score = _REQUEST_THANKS_SCORE if _REQUEST.search(low) else _THANKS_SCORE
        return score, thanks.start()
    return 0.0, -1


def _spoils(low: str, start: int) -> bool:
    """The last message rules satisfaction out: sarcasm or resignation, frustration, a
    request for a human, or a complaint after the thanks."""
    return (
        _NOT_DELIGHT.search(low) is not None
        or _FRUSTRATED.search(low) is not None
        or HUMAN_REQUEST.search(low) is not None
        or _COMPLAINT.search(low, max(start, 0)) is not None
    )


class Satisfaction:
    """``satisfaction``: thanks or praise at the end."""

    name: ClassVar[str] = "rules.satisfaction"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        view = conversation(session)
        spoken = [i for i in view.human if view.texts[i]][-2:]
        if not spoken:
            return []
        final, start = _delight(view.lowers[spoken[-1]])
        earlier = _delight(view.lowers[spoken[0]])[0] if len(spoken) > 1 else 0.0
        if final + 0.5 * earlier < _MIN_DELIGHT or _spoils(view.lowers[spoken[-1]], start):
            return []
        praise = max(final, earlier) >= _PRAISE_SCORE
        confidence = 0.8 if praise else 0.6
        if _unresolved(view, len(session.messages)) is not None:
            confidence *= 0.6
        scores = (earlier, final) if len(spoken) > 1 else (final,)
        where = tuple(i for i, score in zip(spoken, scores, strict=True) if score > 0)
        quote = truncate(view.texts[where[-1]], 160)
        return [
            Signal(
                type="satisfaction",
                polarity="delight",
                severity=0.7 if praise else 0.4,
                description=f'the user ended satisfied: "{truncate(quote, 100)}"',
                detector=self.name,
                evidence=where,
                confidence=round(confidence, 2),
                target="praise" if praise else "thanks",
                quote=quote,
            )
        ]


DETECTORS = [Frustration(), Satisfaction()]
