"""People correcting the agent, and people having to ask again.

``correction``:

* target ``owner`` — an owner intervention: a ``user`` message whose ``name`` contains
  owner/admin/operator, or whose text starts with ``[owner]``/``[admin]``/``[operator]``;
  severity 0.8, confidence 0.95 (the owner stepping in is the strongest correction).
* target ``user`` — a person says the agent got it wrong: "no, I meant", "that's not what I
  asked", "you misunderstood", "that's incorrect", "I didn't ask for" (severity 0.6,
  confidence 0.85); or the weaker "actually, …", "as I said", "not X, Y", "the wrong
  flight" (severity 0.3, confidence 0.5 — people also change their minds and correct
  their own slips).

``repeated_request``: a person's message shares ≥ 60% of its content words (Jaccard,
stopwords ignored, 4+ content words) with one of their previous five messages — target
``repeat`` when ≥ 90% (said again), else ``rephrase``; severity 0.5, confidence 0.7. Or 6+
messages of a person each overlapping an earlier one (≥ 35%): one goal that took many
turns — target ``repeat``, severity 0.4, confidence 0.5.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from tighten.signals.detectors._conversation import Conversation, conversation
from tighten.signals.detectors._cues import Cue
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import truncate

__all__ = ["DETECTORS", "Correction", "RepeatedRequest"]

_NO_START = re.compile(
    r"\W*(?:no|nope)\b[,.!]*\s+(?:i meant|i said|i asked|that's not|that is not|not that"
    r"|not this)|\W*wrong\b"
)
_STRONG = Cue(
    r"\b(?:that|this)(?:'s| is| was) not what i (?:asked|meant|said|wanted|need)"
    r"|\bnot what i (?:asked|meant|wanted|said)|\b(?:what )?i meant\b"
    r"|\byou (?:misunderstood|misread|got (?:it|that|this) wrong|(?:are|'re) wrong"
    r"|made a mistake|missed (?:the|my|that|what))"
    r"|\b(?:that|this|it)(?:'s| is| was) (?:wrong|incorrect|not (?:right|correct))\b"
    r"|\b(?:you have|you've got|you got|you picked|you used|you changed) the wrong\b"
    r"|\bi (?:didn't|did not|never) (?:ask|say|said|request|tell you)\b",
    ("not what", "meant", "misunderst", "misread", "wrong", "mistake", "missed", "incorrect",
     "not right", "not correct", "didn't", "did not", "never"),
)  # fmt: skip
_WEAK = Cue(
    r"^\W*actually,|\bas i (?:already )?(?:said|mentioned|told you|explained)\b"
    r"|\bi (?:already|just) (?:said|told you)\b"
    r"|\bwrong (?:one|file|flight|date|answer|order|account|reservation|item|number|name"
    r"|address|person|card|amount|product|function|line|branch|version)\b",
    ("actually", "as i ", "already", "just said", "just told", "wrong"),
)
_NOT_X_Y = re.compile(
    r"^\W*(?:no,?\s*)?not (?:the )?[\w\-]+(?: [\w\-]+)?,\s*(?:but |i meant |it's )?"
    r"(?!thanks|thank|please|maybe|just|sorry|i\b|that|for|yet|now)[\w\-]+"
)
_OWNER_NAME = re.compile(r"owner|admin|operator", re.IGNORECASE)
_OWNER_TAG = re.compile(r"^\s*\[(?:owner|admin|operator)\]", re.IGNORECASE)
_STOPWORD_TEXT = """
    a about above after again all also am an and any are as at be because been before being
    below between both but by can can't could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't
    having he her here hers him his how i i'd i'll i'm i've if in into is isn't it it's its
    itself just let's me more most my myself no nor not now of off on once only or other
    our ours out over own same she should so some such than that that's the their theirs
    them then there there's these they this those through to too under until up very was
    wasn't we we'd we'll we're we've were weren't what what's when where which while who
    whom why will with won't would wouldn't you you'd you'll you're you've your yours
    please thanks thank yes yeah ok okay hi hello hey sure great want wanted like need
    help get go also well oh know think see tell"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split()) | frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_PUNCTUATION = '.,!?;:()"\u2026'
_SHORT = 120  # "not X, Y" only in a short message
_MIN_CONTENT = 4
_SIMILAR = 0.6
_SAME = 0.9
_RELATED = 0.35
_LOOKBACK = 5
_MANY_TURNS = 6
_MAX_EVIDENCE = 20


def _is_owner(message: dict[str, Any], text: str) -> bool:
    name = message.get("name")
    return bool(name and _OWNER_NAME.search(name)) or _OWNER_TAG.match(text) is not None


class Correction:
    """``correction``: the owner steps in, or a person says the agent got it wrong."""

    name: ClassVar[str] = "rules.correction"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        view = conversation(session)
        signals = []
        strong_cues = set(_STRONG.matching(view.people))
        weak_cues = set(_WEAK.matching(view.people))
        for index in view.human:
            text, low = view.texts[index], view.lowers[index]
            if _is_owner(session.messages[index], text):
                signals.append(self._signal("owner", "the owner intervened", text, (index,)))
                continue
            strong = index in strong_cues or _NO_START.match(low) is not None
            weak = index in weak_cues or (len(low) < _SHORT and _NOT_X_Y.match(low) is not None)
            if strong or weak:
                evidence = _with_reply_before(view, index)
                what = "the user corrected the agent"
                signals.append(self._signal("user", what, text, evidence, strong))
        return signals

    def _signal(
        self, target: str, what: str, text: str, evidence: tuple[int, ...], strong: bool = True
    ) -> Signal:
        if target == "owner":
            severity, confidence = 0.8, 0.95
        else:
            severity, confidence = (0.6, 0.85) if strong else (0.3, 0.5)
        return Signal(
            type="correction",
            polarity="friction",
            severity=severity,
            description=f'{what}: "{truncate(text, 100)}"',
            detector=self.name,
            evidence=evidence,
            confidence=confidence,
            target=target,
            quote=truncate(text, 160),
        )


def _with_reply_before(view: Conversation, index: int) -> tuple[int, ...]:
    """The correction and the assistant message it answers."""
    pos = bisect.bisect_left(view.said, index)
    return (view.said[pos - 1], index) if pos else (index,)


def _content(low: str) -> set[str]:
    """The content words of a lower-case text: split on whitespace after the common
    punctuation is blanked (cheaper than a regex), stopwords removed as a set."""
    for mark in _PUNCTUATION:
        if mark in low:
            low = low.replace(mark, " ")
    found = set(low.split())
    found -= _STOPWORDS
    return found


class RepeatedRequest:
    """``repeated_request``: a person says the same thing again."""

    name: ClassVar[str] = "rules.repeated_request"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        view = conversation(session)
        lowers = view.lowers
        turns = [(i, _content(lowers[i])) for i in view.human if lowers[i].count(" ") >= 3]
        turns = [(i, c) for i, c in turns if len(c) >= _MIN_CONTENT]
        signals = []
        related = 0
        for pos, (index, content) in enumerate(turns):
            best, best_index = _closest(content, turns[max(0, pos - _LOOKBACK) : pos])
            related += best >= _RELATED
            if best >= _SIMILAR:
                target = "repeat" if best >= _SAME else "rephrase"
                did = "repeated" if target == "repeat" else "rephrased"
                what = f"the user {did} an earlier request"
                signals.append(
                    self._signal(target, what, view.texts[index], (best_index, index), 0.5, 0.7)
                )
        if related + 1 >= _MANY_TURNS and not signals:
            first = view.texts[turns[0][0]]
            what = f"the user needed {related + 1} overlapping messages for one request"
            evidence = tuple(i for i, _ in turns)[:_MAX_EVIDENCE]
            signals.append(self._signal("repeat", what, first, evidence, 0.4, 0.5))
        return signals

    def _signal(
        self,
        target: str,
        what: str,
        text: str,
        evidence: tuple[int, ...],
        severity: float,
        confidence: float,
    ) -> Signal:
        return Signal(
            type="repeated_request",
            polarity="friction",
            severity=severity,
            description=f'{what}: "{truncate(text, 100)}"',
            detector=self.name,
            evidence=evidence,
            confidence=confidence,
            target=target,
            quote=truncate(text, 160),
        )


def _closest(content: set[str], earlier: list[tuple[int, set[str]]]) -> tuple[float, int]:
    """The best overlap of ``content`` with the ``earlier`` messages, and which one."""
    best, best_index = 0.0, -1
    size = len(content)
    for before, words in earlier:
        other = len(words)
        if (size if size < other else other) < _RELATED * (other if size < other else size):
            continue  # too different in size to reach even the lower threshold
        shared = len(content & words)  # Jaccard, inlined: a hot loop
        score = shared / (size + other - shared)
        if score > best:
            best, best_index = score, before
    return best, best_index


DETECTORS = [Correction(), RepeatedRequest()]
