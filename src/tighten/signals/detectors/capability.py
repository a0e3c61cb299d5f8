"""Capability gaps: media the agent could not handle, and tools it never uses.

``unhandled_media`` (per session): a user message carried media (its ``media`` key:
``image/png``, ``audio``, ``file``) and the agent's reply said it cannot see, open, read or
listen to it (severity 0.7, confidence 0.9), or brushed it off — no tool call, no mention
of the media, only a generic "how can I help / please describe it" reply (severity 0.5,
confidence 0.6). Target: the media kind (``image``, ``audio``, ``video``, ``file``).

``unused_tool`` (over a window): a tool in the agent's definitions (``session.tools``)
that no session of the window called, although at least 3 sessions asked for something
it does — their user messages share at least two of the tool's keywords (stemmed content
words of its name and description), one of them a keyword no other tool has. Needs the
tool defined in at least 10 sessions. Severity ``0.3 + 0.7 * relevant / defined``;
confidence ``0.4 + 0.04 * relevant``, at most 0.8 (word overlap is a hint, not proof).
Target: the tool name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from tighten.signals.model import DetectContext, SessionData, Signal, WindowSignal
from tighten.signals.text import content_words, truncate

__all__ = ["DETECTORS", "UnhandledMedia", "UnusedTool", "media_kind"]

_MEDIA_NOUN = (
    r"(?:images?|photos?|pictures?|screenshots?|scans?|files?|attachments?|attached|uploads?"
    r"|uploaded|audio|voice(?: notes?| messages?| memos?)?|recordings?|videos?|documents?"
    r"|pdfs?|media|clips?)"
)
_SENSE = (
    r"(?:see|view|open|read|process|listen(?: to)?|hear|watch|play|access|analy[sz]e"
    r"|interpret|display|download|look at|handle|receive|support)"
)
_CANNOT_START = (
    r"\b(?:can(?:no|')?t|can not|unable to|not able to|(?:do not|don't|does not|doesn't)"
    r" have (?:the )?(?:ability|capability) to|no (?:ability|way) to)\s+(?:\w+\s+){0,3}?"
)
_CANNOT = re.compile(
    _CANNOT_START + _SENSE + r"\b[^.!?\n]{0,60}?\b" + _MEDIA_NOUN + r"\b"
    r"|" + _CANNOT_START + r"(?:see|view|open|listen to|hear|watch|play)\s+"
    r"(?:it|this|that|them|those)\b"
    r"|\b(?:text[- ]only|only (?:process|read|understand|handle|see) text)\b"
    r"|\b(?:do not|don't|does not|doesn't) support " + _MEDIA_NOUN,
    re.IGNORECASE,
)
_MENTIONS_MEDIA = re.compile(r"\b" + _MEDIA_NOUN + r"\b", re.IGNORECASE)
_GENERIC = re.compile(
    r"\bhow (?:can|may) i (?:help|assist)|\bwhat can i do for you|\bwhat would you like"
    r"|\bcould you (?:please )?(?:clarify|describe|tell me|provide|type|explain)"
    r"|\bplease (?:describe|tell me|type|explain|clarify)|\b(?:didn't|did not) (?:receive|get)"
    r"|\b(?:seems|looks|appears) (?:to be )?(?:empty|blank)|\bno (?:text|content|message)\b",
    re.IGNORECASE,
)
MIN_DEFINED = 10
MIN_RELEVANT = 3
MAX_SESSIONS = 20


def media_kind(media: str) -> str:
    """The kind of a media type, stable for patterns: ``image/png`` → ``image``,
    ``application/pdf`` → ``file``, ``audio`` → ``audio``."""
    major = media.lower().split("/", 1)[0].strip()
    if major in ("image", "audio", "video"):
        return major
    return "file" if "/" in media or major in ("document", "pdf", "") else major


class UnhandledMedia:
    """The user sent media and the agent said it cannot handle it, or ignored it."""

    name: ClassVar[str] = "rules.unhandled_media"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        messages = session.messages
        found: list[Signal] = []
        seen: set[str] = set()
        for index, msg in enumerate(messages):
            media = msg.get("media")
            if not media or msg["role"] != "user":
                continue
            first = media if isinstance(media, str) else str(media[0])
            kind = media_kind(first)
            if kind in seen:
                continue
            signal = self._check(messages, index, first, kind)
            if signal is not None:
                seen.add(kind)
                found.append(signal)
        return found

    def _check(
        self, messages: list[dict[str, Any]], index: int, media: str, kind: str
    ) -> Signal | None:
        replies, called = _reply(messages, index)
        if not replies:
            return None
        reply_index, text = replies[0]
        for at, reply in replies:
            if _CANNOT.search(reply):
                return self._signal(kind, media, (index, at), reply, cannot=True)
        short_request = len(messages[index]["content"].split()) < 12
        ignored = not called and short_request and not _MENTIONS_MEDIA.search(text)
        if ignored and _GENERIC.search(text):
            return self._signal(kind, media, (index, reply_index), text, cannot=False)
        return None

    def _signal(
        self, kind: str, media: str, evidence: tuple[int, int], reply: str, cannot: bool
    ) -> Signal:
        said = "said it could not handle it" if cannot else "ignored it with a generic reply"
        return Signal(
            type="unhandled_media",
            polarity="friction",
            severity=0.7 if cannot else 0.5,
            description=f"the user sent {media} and the agent {said}: {truncate(reply, 100)}",
            detector=self.name,
            evidence=evidence,
            confidence=0.9 if cannot else 0.6,
            target=kind,
            quote=truncate(reply),
        )


def _reply(messages: list[dict[str, Any]], index: int) -> tuple[list[tuple[int, str]], bool]:
    """The agent's text replies to the user message at ``index`` (until the next user
    message), and whether it called a tool meanwhile."""
    replies: list[tuple[int, str]] = []
    called = False
    for at in range(index + 1, len(messages)):
        msg = messages[at]
        if msg["role"] == "user":
            break
        if msg["role"] == "assistant":
            called = called or bool(msg.get("tool_calls"))
            if msg["content"]:
                replies.append((at, msg["content"]))
    return replies, called


@dataclass(frozen=True, slots=True)
class _Tool:
    name: str
    keywords: frozenset[str]
    distinctive: frozenset[str]


class UnusedTool:
    """Tools the agent has but never calls, although users ask for what they do."""

    name: ClassVar[str] = "rules.unused_tool"

    def detect_window(
        self,
        agent: str,
        sessions: Sequence[SessionData],
        signals: Mapping[str, Sequence[Signal]],
        context: DetectContext,
    ) -> Iterable[WindowSignal]:
        defined: Counter[str] = Counter()
        descriptions: dict[str, str] = {}
        called: set[str] = set()
        for session in sessions:
            called.update(call.name for call in session.tool_calls)
            for tool in session.tools:
                name = tool.get("name")
                if isinstance(name, str) and name:
                    defined[name] += 1
                    descriptions.setdefault(name, str(tool.get("description") or ""))
        unused = [n for n, count in defined.items() if n not in called and count >= MIN_DEFINED]
        if not unused:
            return []
        tools = _keywords(descriptions)
        relevant: dict[str, list[SessionData]] = {name: [] for name in unused}
        for session in sessions:
            offered = {t["name"] for t in session.tools if t.get("name") in relevant}
            if not offered:
                continue
            asked = content_words(_user_text(session))
            for name in offered:
                if _relevant(tools[name], asked):
                    relevant[name].append(session)
        return [
            self._signal(agent, tools[name], defined[name], found)
            for name, found in sorted(relevant.items())
            if len(found) >= MIN_RELEVANT
        ]

    def _signal(
        self, agent: str, tool: _Tool, defined: int, relevant: list[SessionData]
    ) -> WindowSignal:
        share = len(relevant) / defined
        return WindowSignal(
            type="unused_tool",
            polarity="friction",
            severity=round(min(1.0, 0.3 + 0.7 * share), 3),
            description=f"tool {tool.name} was never called in {defined} sessions; "
            f"{len(relevant)} asked for something it does",
            detector=self.name,
            agent=agent,
            sessions=tuple(s.session_id for s in relevant[:MAX_SESSIONS]),
            confidence=round(min(0.8, 0.4 + 0.04 * len(relevant)), 3),
            target=tool.name,
            quote=truncate(_user_text(relevant[0])) or None,
        )


def _keywords(descriptions: dict[str, str]) -> dict[str, _Tool]:
    """Each tool's keywords, and those no other tool shares."""
    words = {
        name: frozenset(content_words(f"{name.replace('_', ' ')} {text}"))
        for name, text in descriptions.items()
    }
    owners: Counter[str] = Counter(w for ws in words.values() for w in ws)
    return {
        name: _Tool(name, ws, frozenset(w for w in ws if owners[w] == 1))
        for name, ws in words.items()
    }


def _relevant(tool: _Tool, asked: set[str]) -> bool:
    shared = tool.keywords & asked
    return len(shared) >= min(2, len(tool.keywords)) and not shared.isdisjoint(tool.distinctive)


def _user_text(session: SessionData) -> str:
    return "\n".join(m["content"] for m in session.messages if m["role"] == "user")


DETECTORS = [UnhandledMedia(), UnusedTool()]
