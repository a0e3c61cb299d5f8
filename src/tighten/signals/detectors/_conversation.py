"""A session prepared once for the conversation detectors (tool errors, progress,
escalation, unanswered questions, corrections, sentiment).

:func:`conversation` strips control markers, lower-cases each text once, tells people
from tool observations posing as ``user`` messages, and joins every tool call with its
result message and failure reason (:class:`Attempt`). The last prepared session is kept,
so the detectors that run one after another on the same session share the work.

Text-protocol agents (SWE-agent-style shells) get their observations back as ``user``
messages (``<returncode>1</returncode>…``); each becomes an :class:`Attempt` of a pseudo
tool named after the command's program (``python``, ``pytest``, ``sed``), taken from the
last fenced code block of the assistant message before it.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any

import orjson

from tighten.signals.detectors._cues import Part
from tighten.signals.model import SessionData
from tighten.signals.text import (
    error_excerpt,
    failure_reason,
    looks_like_observation,
    strip_control,
)
from tighten.traces.model import ToolCall

__all__ = [
    "Attempt",
    "Conversation",
    "conversation",
    "normalize_arguments",
    "program",
    "shell_command",
]


_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.DOTALL)
_SEGMENT = re.compile(r"&&|\|\||;|\n")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?([^\n]*)\n.*?\n\1[ \t]*(?=\n|$)", re.DOTALL)
_SKIP_WORDS = frozenset({"cd", "sudo", "env", "time", "timeout", "nohup", "exec"})
_ANSWERS_WITH_ONE = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "diff", "cmp", "test", "["})
_TRIVIAL = frozenset({"echo", "true", "false", "export", "set", "source", "printf", "shell"})


@dataclass(slots=True)
class Attempt:
    """One tool call (or one text-protocol command) with what came back."""

    tool: str
    arguments: str  # normalized: JSON with sorted keys, or whitespace-collapsed text
    call_index: int  # the assistant message that made the call
    result_index: int | None  # the message that carries the result
    result: str | None
    reason: str | None  # why the result is a failure; None when it is not
    error: str  # the failure text to quote ("" when it did not fail)
    structured: bool  # the source itself marked the error

    @property
    def failed(self) -> bool:
        return self.reason is not None


@dataclass(slots=True)
class Conversation:
    """Per-message texts of one session (``""`` for system and tool messages and for
    observations) and the indexes detectors need."""

    texts: list[str]  # control markers stripped
    lowers: list[str]  # lower-cased, typographic apostrophes made plain
    human: list[int]  # user messages written by a person
    said: list[int]  # assistant messages with text
    observations: list[int]  # user messages that are really tool observations
    attempts: list[Attempt]
    people: Part  # the person's texts, for Cue.scan
    assistant: Part  # the assistant's texts

    def previous_human(self, index: int) -> int | None:
        """The closest person's message before ``index``."""
        pos = bisect.bisect_left(self.human, index)
        return self.human[pos - 1] if pos else None

    def next_human(self, index: int) -> int | None:
        """The first person's message after ``index``."""
        pos = bisect.bisect_right(self.human, index)
        return self.human[pos] if pos < len(self.human) else None

    def is_reply(self, index: int, message: dict[str, Any]) -> bool:
        """The assistant message at ``index`` speaks to the person: it calls no tool and
        no tool observation answers it."""
        if message.get("tool_calls"):
            return False
        pos = bisect.bisect_left(self.observations, index + 1)
        return not (pos < len(self.observations) and self.observations[pos] == index + 1)

    def recovered(self, attempt: Attempt) -> bool:
        """A later call of the same tool, or a call of another tool after this one and
        before the user speaks again, follows the failed ``attempt``."""
        limit = self.next_human(attempt.call_index)
        for later in self.attempts:
            if later.call_index <= attempt.call_index:
                continue
            if later.tool == attempt.tool:
                return True
            if limit is None or later.call_index < limit:
                return True
        return False

    def resolved(self, attempt: Attempt) -> bool:
        """A later call of the same tool succeeded."""
        return any(
            later.tool == attempt.tool
            and not later.failed
            and later.call_index > attempt.call_index
            for later in self.attempts
        )


_last: tuple[SessionData, list[dict[str, Any]], int, Conversation] | None = None


def conversation(session: SessionData) -> Conversation:
    """The prepared view of ``session`` (built once for consecutive calls with the same
    session object and unchanged message list)."""
    global _last
    cached = _last
    messages = session.messages
    if (
        cached is not None
        and cached[0] is session
        and cached[1] is messages
        and cached[2] == len(messages)
    ):
        return cached[3]
    built = _build(session)
    _last = (session, messages, len(messages), built)
    return built


def _build(session: SessionData) -> Conversation:
    texts: list[str] = []
    lowers: list[str] = []
    human: list[int] = []
    said: list[int] = []
    observations: list[int] = []
    tools: list[int] = []
    for index, msg in enumerate(session.messages):
        role = msg["role"]
        if role == "user":
            text = strip_control(msg.get("content") or "")
            if looks_like_observation(text):
                observations.append(index)
                texts.append("")
                lowers.append("")
                continue
            human.append(index)
        elif role == "assistant":
            text = msg.get("content") or ""
            if text:
                said.append(index)
        else:
            if role == "tool":
                tools.append(index)
            texts.append("")
            lowers.append("")
            continue
        texts.append(text)
        low = text.lower()
        lowers.append(low.replace("\u2019", "'") if "\u2019" in low else low)
    attempts = _call_attempts(session.messages, session.tool_calls, tools)
    if observations:
        attempts.extend(_observation_attempts(session.messages, observations))
        attempts.sort(key=lambda a: a.call_index)
    people = Part.of(human, lowers, texts)
    assistant = Part.of(said, lowers, texts, clip=True)
    return Conversation(texts, lowers, human, said, observations, attempts, people, assistant)


def normalize_arguments(arguments: str) -> str:
    """Arguments in a canonical form: JSON re-serialized with sorted keys, other text with
    its whitespace collapsed."""
    text = arguments.strip()
    if text[:1] in ("{", "["):
        try:
            return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONDecodeError:
            pass
    return " ".join(text.split())


def _call_attempts(
    messages: list[dict[str, Any]], calls: list[ToolCall], tool_indexes: list[int]
) -> list[Attempt]:
    """Each call with the index of the tool message answering it (``tool_indexes``: those
    of the tool messages): the first unclaimed one after the call with its id (ids are
    sometimes reused within a session), else with its tool name."""
    if not calls:
        return []
    by_id: dict[str, list[int]] = {}
    for i in tool_indexes:
        call_id = messages[i].get("tool_call_id")
        if call_id:
            by_id.setdefault(call_id, []).append(i)
    claimed: set[int] = set()
    attempts = []
    for call in sorted(calls, key=lambda c: c.message_index):
        after = call.message_index
        candidates = by_id.get(call.call_id, ()) if call.call_id else ()
        where = next((i for i in candidates if i > after and i not in claimed), None)
        if where is None:
            where = next(
                (
                    i
                    for i in tool_indexes
                    if i > after
                    and i not in claimed
                    and messages[i].get("name") in (None, call.name)
                ),
                None,
            )
        if where is not None:
            claimed.add(where)
        attempts.append(_attempt(call, where))
    return attempts


def _attempt(call: ToolCall, where: int | None) -> Attempt:
    result = call.result
    structured = call.status == "error"
    if structured:
        text = call.error or result or ""
        reason: str | None = failure_reason(text) or "reported error"
    else:
        text = result or ""
        reason = failure_reason(text) if text else None
    args = normalize_arguments(call.arguments)
    if reason == "exit code 1" and not structured and _benign_exit(shell_command(args)):
        reason = None
    error = error_excerpt(text) if reason else ""
    return Attempt(call.name, args, call.message_index, where, result, reason, error, structured)


def shell_command(arguments: str) -> str:
    """The command line of a shell tool's (normalized) arguments, or ``""``."""
    if not arguments.startswith("{"):
        return arguments
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return ""
    for key in ("command", "cmd", "script", "code", "input"):
        found = value.get(key)
        if isinstance(found, str):
            return found
    return ""


def _benign_exit(command: str) -> bool:
    """``grep``, ``diff``, ``test`` and the like exit with 1 to answer "no", not to fail."""
    return bool(command) and program(command) in _ANSWERS_WITH_ONE


def _observation_attempts(messages: list[dict[str, Any]], observations: list[int]) -> list[Attempt]:
    attempts = []
    for index in observations:
        before = index - 1
        while before >= 0 and messages[before]["role"] != "assistant":
            before -= 1
        if before < 0:
            continue
        command = _command(messages[before].get("content") or "")
        if not command:
            continue
        text = strip_control(messages[index].get("content") or "")
        reason = failure_reason(text)
        if reason == "exit code 1" and _benign_exit(command):
            reason = None
        error = error_excerpt(_output(text)) if reason else ""
        args = " ".join(command.split())
        attempts.append(Attempt(program(command), args, before, index, text, reason, error, False))
    return attempts


def _command(text: str) -> str:
    blocks = _FENCE.findall(text)
    return blocks[-1].strip() if blocks else ""


def program(command: str) -> str:
    """The program a shell command runs (``cd x && python -m pytest`` → ``pytest``)."""
    if "<<" in command:
        command = _HEREDOC.sub(r"<<\1\2", command)
    segments: list[str] = [s.strip() for s in _SEGMENT.split(command) if s and s.strip()]
    for segment in reversed(segments):
        tokens = [t for t in segment.split() if "=" not in t or t.startswith("-")]
        while tokens and tokens[0] in _SKIP_WORDS:
            tokens = tokens[2:] if tokens[0] in ("cd", "timeout") else tokens[1:]
        if not tokens:
            continue
        name = tokens[0].rsplit("/", 1)[-1]
        if name.startswith("python") and len(tokens) > 2 and tokens[1] == "-m":
            name = tokens[2]
        if name not in _TRIVIAL:
            return name[:40]
    return "shell"


def _output(text: str) -> str:
    """The body of a ``<returncode>…</returncode><output>…</output>`` observation."""
    start = text.find("<output>")
    if start < 0:
        return text
    end = text.find("</output>", start)
    return text[start + 8 : end if end >= 0 else None]
