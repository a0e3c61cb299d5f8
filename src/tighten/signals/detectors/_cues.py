"""Cheap phrase matching over a session's texts, shared by the conversation detectors.

A :class:`Cue` is a regex together with substrings it cannot match without; a
:class:`Part` is the texts of one speaker joined into one blob. Looking for the substrings
with ``str.find`` over the blob costs a small fraction of running the regex over every
message, and most messages contain none of them — which is what keeps the rule set at
thousands of sessions per second. The cues several detectors share live here too.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

__all__ = ["HUMAN_REQUEST", "INABILITY", "POLICY", "Cue", "Part"]

_CLIP_HEAD, _CLIP_TAIL = 400, 300
_WINDOW = 100  # no cue matches more than this many characters
_MAX_SPOTS = 4


@dataclass(slots=True)
class Part:
    """The lower-cased texts of some messages (a person's, the assistant's) joined into
    one ``blob``, with where each message starts in it. ``texts`` are what is scanned:
    a long assistant message is cut to its opening and its closing, where apologies,
    refusals and handoff offers are said (the middle holds lists, details, code)."""

    indexes: list[int]
    texts: list[str]  # lower-cased
    shown: list[str]  # the same in the original case, for quotes
    blob: str
    starts: list[int]

    @classmethod
    def of(
        cls, indexes: list[int], lowers: list[str], originals: list[str], clip: bool = False
    ) -> Part:
        texts = [lowers[i] for i in indexes]
        shown = [originals[i] for i in indexes]
        if clip:
            texts = [_clip(text) for text in texts]
            shown = [_clip(text) for text in shown]
        starts, offset = [], 0
        for text in texts:
            starts.append(offset)
            offset += len(text) + 1
        return cls(indexes, texts, shown, "\n".join(texts), starts)

    def containing(self, hints: tuple[str, ...]) -> dict[int, list[int]]:
        """The messages (positions in ``indexes``) that contain one of ``hints``, with
        where in their text (up to ``_MAX_SPOTS``), found with one ``str.find`` pass per
        hint over the blob."""
        blob, starts = self.blob, self.starts
        found: dict[int, list[int]] = {}
        for hint in hints:
            if hint not in blob:  # the common case, and cheaper than a find
                continue
            at = blob.find(hint)
            while at >= 0:
                pos = bisect.bisect_right(starts, at) - 1
                spots = found.setdefault(pos, [])
                spots.append(at - starts[pos])
                if len(spots) >= _MAX_SPOTS and pos + 1 < len(starts):
                    at = blob.find(hint, starts[pos + 1])
                else:
                    at = blob.find(hint, at + 1)
        return found


class Cue:
    """A regex together with substrings it cannot match without (lower-case, for
    lower-cased text). The substrings are looked for first, over all messages at once:
    ``str.find`` costs a small fraction of a regex scan, and most messages contain none
    of them."""

    __slots__ = ("hints", "pattern")

    def __init__(self, pattern: str, hints: tuple[str, ...], flags: int = 0) -> None:
        self.pattern = re.compile(pattern, flags)
        self.hints = hints

    def search(self, text: str) -> re.Match[str] | None:
        """The first match in one text (hints checked first)."""
        for hint in self.hints:
            if hint in text:
                return self.pattern.search(text)
        return None

    def scan(self, part: Part) -> list[tuple[int, int, re.Match[str]]]:
        """``(message index, position in part, match)`` for each message of ``part``
        whose (scanned) text matches. Around a few hint spots only a window is searched
        (every match contains a hint and is shorter than ``_WINDOW``); with many spots,
        the whole text."""
        search, texts = self.pattern.search, part.texts
        found = []
        for pos, spots in sorted(part.containing(self.hints).items()):
            text = texts[pos]
            if len(spots) >= _MAX_SPOTS or len(text) <= 2 * _WINDOW:
                match = search(text)
            else:
                windows = (search(text, max(0, s - _WINDOW), s + _WINDOW) for s in spots)
                match = next((m for m in windows if m is not None), None)
            if match is not None:
                found.append((part.indexes[pos], pos, match))
        return found

    def matching(self, part: Part) -> list[int]:
        """The indexes of the messages of ``part`` that match."""
        return [index for index, _, _ in self.scan(part)]


# The assistant says it cannot do or does not know something.
INABILITY = Cue(
    r"\bi (?:do not|don't|really don't) (?:know|have (?:access|any (?:information|details|record)"
    r"|information|the (?:ability|information|details)))"
    r"|\bi(?: am|'m) (?:not able|unable|afraid i (?:can't|cannot|don't)|not sure i can)"
    r"|\bi (?:cannot|can't|can not|could not|couldn't|won't be able to|am not able to) (?:find"
    r"|locate|provide|help|assist|access|answer|see|determine|retrieve|process|do|complete"
    r"|perform|make|cancel|modify|change|add|remove|book|issue|offer|give|grant|accommodate"
    r"|verify|confirm|look up|check|share|disclose|comply|fulfil)"
    r"|\b(?:no|not have any|don't have any) information (?:about|on|regarding)"
    r"|\b(?:beyond|outside(?: of)?) (?:my|the) (?:scope|capabilit|abilit)"
    r"|\bnot something i (?:can|am able to) (?:help|assist|do)"
    r"|\bthere is no way for me to",
    ("n't", "not", "unable", "information", "scope", "abilit", "no way"),
)
# ... and gives a rule as the reason: a refusal rather than a gap in knowledge.
POLICY = Cue(
    r"\bpolic(?:y|ies)\b|\bnot (?:permitted|allowed|eligible)\b|\bineligible\b|\brules?\b"
    r"|\brestrict|\bterms (?:and|&) conditions\b|\bguidelines?\b|\bnot authori[sz]ed\b"
    r"|\bnon-?refundable\b|\bregulations?\b|\bagainst (?:our|the) (?:rules|terms)\b",
    ("polic", "permitted", "allowed", "eligib", "rule", "restrict", "terms", "guideline",
     "authori", "refundable", "regulation"),
)  # fmt: skip
# A person asks to leave the agent for a human.
HUMAN_REQUEST = Cue(
    r"\b(?:speak|talk|chat)(?:ing)? (?:to|with) (?:a |an |your |the |some )?(?:human|person|real"
    r"|live|manager|supervisor|representative|agent|someone|somebody|operator)"
    r"|\breal (?:person|human)\b"
    r"|\b(?:want|need|get|have|request|prefer|like)(?: to (?:have|get))? (?:a |an |some )?"
    r"(?:human|live) (?:agent|being|representative|support|person)\b"
    r"|\btransfer me\b|\bconnect(?:ing)? me (?:to|with)\b|\bescalate (?:this|it|my)\b"
    r"|\b(?:get|give|put) me (?:through to )?(?:a|an|your|the) (?:manager|supervisor|human"
    r"|representative|person)\b|\blet me (?:speak|talk) to\b|\byour (?:manager|supervisor)\b"
    r"|\b(?:want|need|see|call) (?:a|the|your) (?:manager|supervisor)\b",
    ("speak", "talk", "chat", "human", "person", "transfer me", "connect", "escalate",
     "manager", "supervisor", "representative", "live agent", "live support"),
)  # fmt: skip


def _clip(text: str) -> str:
    if len(text) <= _CLIP_HEAD + _CLIP_TAIL:
        return text
    return f"{text[:_CLIP_HEAD]} … {text[-_CLIP_TAIL:]}"
