"""Quality rejections: a QA step, a test run, a reviewer or the user turned the output down.

``quality_rejection`` fires for

* a QA-like tool (its name has a part such as ``qa``, ``review``, ``validate``, ``lint``,
  ``test``, ``grade``, ``judge``; ``check``/``verify`` only when the rest of the name is
  about quality, so ``check_availability`` is not one) whose result says fail, rejected,
  not approved, ``"approved": false`` or a score below its threshold;
* a test command run through any tool (``pytest``, ``go test``, ``npm test``, ...) whose
  output shows failures (``1 failed``, ``FAILED``, ``AssertionError``, ``Tests: 1
  failed``, ``--- FAIL``) or a non-zero ``<returncode>``/exit code;
* a message from the user (after the agent's first reply) or from a reviewer-named agent
  that rejects the output: ``rejected``, ``not approved``, ``this is wrong``, ``try
  again``, 👎, a leading ``-1``.

One signal per target: the QA tool's name, the test runner (``pytest``, ``go test``), the
reviewer's name or ``user``. Severity: 0.7 when the last verdict of that target was still
a rejection, 0.4 when a later run passed (the agent recovered), +0.05 per further
rejection, at most 1. Confidence: 0.85 for tool verdicts and test output, 0.7 for a
person's words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import looks_like_observation, truncate

__all__ = ["DETECTORS", "QualityRejection", "is_qa_tool", "rejection_reason"]

_STRONG_QA_WORDS = (
    "qa review reviewer reviews validate validator validation lint linter linters test tests "
    "grade grader critic critique judge evaluate evaluator eval evals approve approval audit "
    "proofread"
)
_STRONG_QA = frozenset(_STRONG_QA_WORDS.split())
_WEAK_QA_WORDS = "check checks checker verify verifier verification inspect"
_WEAK_QA = frozenset(_WEAK_QA_WORDS.split())
_QA_OBJECT_WORDS = (
    "quality code output answer fact facts spell spelling grammar style content draft "
    "article response result results compliance policy safety format schema type types run "
    "work submission solution all"
)
_QA_OBJECTS = frozenset(_QA_OBJECT_WORDS.split())
_NAME_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

_TEST_COMMAND = re.compile(
    r"\b(?:py\.?test|unittest|nosetests|tox|nox|jest|vitest|mocha|rspec|phpunit|ctest"
    r"|(?:go|cargo|npm|yarn|pnpm|bun|deno|mvn|gradle|dotnet|mix|swift|make|rake)"
    r"\s+(?:run\s+)?test\w*|manage\.py\s+test)\b"
)
_TEST_FAILURE = re.compile(
    r"\b[1-9]\d* (?:failed|failing|failures?|errors?)\b|^FAILED\b|^FAIL\b|^--- FAIL\b"
    r"|\bAssertionError\b|\btest result: FAILED|\bTests?:\s+[1-9]\d* failed"
    r"|\bFailures: [1-9]|<returncode>\s*[1-9]\d*\s*</returncode>"
    r"|\bexit(?:ed with)? (?:code|status)[\s:=]*[1-9]",
    re.MULTILINE | re.IGNORECASE,
)
_VERDICT = re.compile(
    r"(?<!\b0 )(?<!\bno )\b(?:rejected|reject|not approved|disapproved|changes requested"
    r"|request(?:ed)? changes|(?:did|does) not pass|(?:didn't|doesn't) pass|not acceptable"
    r"|unacceptable|below (?:the )?(?:threshold|passing|minimum)|failed|fails|failing|fail)\b"
    r"(?![\"']?\s*[:=]\s*0\b)"
    r'|"(?:approved|passed|pass|valid|is_valid|ok|success|accepted)"\s*:\s*false'
    r'|"(?:status|verdict|result|decision|outcome)"\s*:\s*"(?:fail(?:ed|ure)?|reject(?:ed)?'
    r'|denied|invalid)"',
    re.IGNORECASE,
)
_SCORE = re.compile(
    r"\bscore[\"']?\s*[:=]\s*(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?", re.I
)
_THRESHOLD = re.compile(
    r"\b(?:threshold|min(?:imum)?_?score|pass(?:ing)?_?(?:score|mark)|required_?score)"
    r"[\"']?\s*[:=]\s*(\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_PERSON_REJECTION = re.compile(
    r"^\s*(?:rejected|not approved|disapproved|-1\b)"
    r"|\b(?:draft|output|answer|article|post|pr|change|changes|version|response|reply|code"
    r"|patch|submission) (?:is |was |has been |got )?(?:rejected|not approved)\b"
    r"|\b(?:this|that|it)(?:'s| is| was) (?:all )?(?:wrong|incorrect"
    r"|not (?:right|correct|what i (?:asked|wanted)))\b|\btry again\b|\bredo (?:it|this|that)\b"
    r"|👎",
    re.IGNORECASE,
)
# Cheap pre-checks: substrings without which the regexes above cannot match.
_VERDICT_HINTS = ("reject", "approv", "changes", "not pass", "n't pass", "acceptable",
                  "below", "fail", "false", "denied", "invalid")  # fmt: skip
_FAILURE_HINTS = ("fail", "error", "assert", "returncode", "exit")
_THRESHOLD_HINTS = ("threshold", "min", "pass", "required")
_RUNNER_HINTS = ("test", "tox", "nox", "jest", "mocha", "rspec", "phpunit")
_PERSON_HINTS = ("reject", "approv", "wrong", "incorrect", "not right", "not correct",
                 "not what", "try again", "redo", "👎", "-1")  # fmt: skip
_SELF_RETRY = re.compile(
    r"\b(?:i'll|i will|i'd|let me|let's|i can|i could|we'll|we will"
    r"|(?:can|could|should|may|shall) (?:i|we)) try again",
    re.IGNORECASE,
)
_FILE_TOOL = re.compile(r"edit|write|create|replace|patch|insert|file|save", re.I)
_REVIEWER_PARTS = frozenset(
    ["review", "reviewer", "critic", "qa", "judge", "grader", "evaluator", "approver"]
)


@dataclass(slots=True)
class _Target:
    """The verdicts of one rejecting party in one session."""

    rejections: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    quote: str = ""
    passed_after: bool = False
    person: bool = False

    def reject(self, index: int, reason: str, quote: str) -> None:
        self.rejections.append(index)
        self.reasons.append(reason)
        self.quote = quote
        self.passed_after = False

    def accept(self) -> None:
        if self.rejections:
            self.passed_after = True


class QualityRejection:
    """A QA tool, test run, reviewer or the user rejected the agent's output."""

    name: ClassVar[str] = "rules.quality_rejection"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        targets: dict[str, _Target] = {}
        for call in session.tool_calls:
            runner = _test_runner(call.name, call.arguments)
            if runner is None and not is_qa_tool(call.name):
                continue
            if call.result is None and call.error is None:
                continue
            text = _head_and_tail(f"{call.error or ''}\n{call.result or ''}")
            reason = _test_failure(text) if runner else rejection_reason(text)
            _record(targets, runner or call.name, call.message_index, reason, text)
        self._messages(session.messages, targets)
        return [self._signal(name, t) for name, t in targets.items() if t.rejections]

    def _messages(self, messages: list[dict[str, Any]], targets: dict[str, _Target]) -> None:
        """People's rejections, and test output fed back as ``user`` observations (agents
        that run the shell commands written in their replies)."""
        last_reply: int | None = None
        for index, msg in enumerate(messages):
            role = msg["role"]
            speaker = msg.get("name")
            reviewer = isinstance(speaker, str) and role != "tool" and _is_reviewer(speaker)
            if role == "assistant" and not reviewer:
                last_reply = index
            elif last_reply is None or not (role == "user" or reviewer):
                continue
            elif role == "user" and looks_like_observation(msg["content"]):
                command = messages[last_reply]["content"][-1500:]
                runner = _test_runner("", command)
                if runner:
                    text = _head_and_tail(msg["content"])
                    _record(targets, runner, index, _test_failure(text), text)
            else:
                text = msg["content"]
                reason = person_rejection(text) or (rejection_reason(text) if reviewer else None)
                if reason:
                    who = speaker if reviewer and isinstance(speaker, str) else "user"
                    targets.setdefault(who, _Target(person=True)).reject(
                        index, reason, truncate(text)
                    )

    def _signal(self, name: str, target: _Target) -> Signal:
        count = len(target.rejections)
        base = 0.6 if target.person else (0.4 if target.passed_after else 0.7)
        times = "once" if count == 1 else f"{count} times"
        after = " before a later run passed" if target.passed_after else ""
        return Signal(
            type="quality_rejection",
            polarity="friction",
            severity=round(min(1.0, base + 0.05 * (count - 1)), 3),
            description=f"{name} rejected the output {times}{after} ({target.reasons[-1]})",
            detector=self.name,
            evidence=tuple(target.rejections[:10]),
            confidence=0.7 if target.person else 0.85,
            target=name,
            quote=target.quote or None,
        )


@lru_cache(maxsize=4096)
def is_qa_tool(name: str) -> bool:
    """True when a tool's name says it checks quality (``run_tests``, ``qa_review``,
    ``lint``, ``check_grammar``) rather than looking something up (``check_status``)."""
    parts = [p.lower() for p in _NAME_PART.findall(name)]
    if any(p in _STRONG_QA for p in parts):
        return True
    if any(p in _WEAK_QA for p in parts):
        return all(p in _WEAK_QA or p in _QA_OBJECTS for p in parts)
    return False


def rejection_reason(text: str) -> str | None:
    """Why a QA verdict reads as a rejection (the matched words, or ``score 3 below 7``).
    The regexes only read the lines around their key words, which keeps long outputs
    cheap."""
    low = text.lower()
    verdict = _VERDICT.search(_near(text, low, _VERDICT_HINTS))
    if verdict:
        return verdict.group(0).strip().lower()
    failure = _test_failure(text, low)
    if failure:
        return failure
    score = _SCORE.search(_near(text, low, ("score",)))
    if score is None:
        return None
    value = float(score.group(1))
    threshold = _THRESHOLD.search(_near(text, low, _THRESHOLD_HINTS))
    if threshold and value < float(threshold.group(1)):
        return f"score {score.group(1)} below {threshold.group(1)}"
    if not threshold and score.group(2) and value < 0.5 * float(score.group(2)):
        return f"score {score.group(1)}/{score.group(2)}"
    return None


def _near(text: str, low: str, hints: tuple[str, ...], width: int = 150) -> str:
    """The parts of ``text`` around its ``hints`` (``low`` is ``text`` lower-cased): each
    occurrence's line, clipped to ``width`` characters either side; "" when none occurs."""
    spans: list[tuple[int, int]] = []
    for hint in hints:
        at = low.find(hint)
        while at != -1 and len(spans) < 40:
            start = max(low.rfind("\n", 0, at) + 1, at - width)
            end = low.find("\n", at)
            end = min(len(low) if end == -1 else end, at + len(hint) + width)
            spans.append((start, end))
            at = low.find(hint, end)
    if not spans:
        return ""
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return "\n".join(text[start:end] for start, end in merged)


def person_rejection(text: str) -> str | None:
    """The words with which a person rejects the output, if any (``try again`` said about
    oneself, "I'll try again", is not one)."""
    if not _contains_any(text.lower(), _PERSON_HINTS):
        return None
    found = _PERSON_REJECTION.search(text)
    if found is None:
        return None
    phrase = found.group(0).strip().lower()
    if phrase == "try again" and _SELF_RETRY.search(text):
        return None
    return phrase


def _record(
    targets: dict[str, _Target], name: str, index: int, reason: str | None, text: str
) -> None:
    target = targets.setdefault(name, _Target())
    if reason:
        target.reject(index, reason, _excerpt(text, reason))
    else:
        target.accept()


def _test_runner(tool: str, arguments: str) -> str | None:
    """The test runner a command runs (``pytest``, ``go test``), if any. Long arguments
    and file-editing tools carry file contents, not commands."""
    if not arguments or len(arguments) > 1500 or (tool and _edits_files(tool)):
        return None
    if not _contains_any(arguments, _RUNNER_HINTS):
        return None
    found = _TEST_COMMAND.search(arguments)
    if found is None:
        return None
    runner = " ".join(found.group(0).replace("run ", "").split())
    return "pytest" if runner.startswith("py") and "test" in runner else runner


def _contains_any(text: str, hints: tuple[str, ...]) -> bool:
    for hint in hints:  # noqa: SIM110 (a plain loop is twice as fast as any() here)
        if hint in text:
            return True
    return False


@lru_cache(maxsize=1024)
def _is_reviewer(name: str) -> bool:
    """True for a speaker named like a reviewer (``reviewer``, ``qa_agent``, ``Critic``)."""
    return any(p.lower() in _REVIEWER_PARTS for p in _NAME_PART.findall(name))


@lru_cache(maxsize=4096)
def _edits_files(tool: str) -> bool:
    return _FILE_TOOL.search(tool) is not None


def _test_failure(text: str, low: str | None = None) -> str | None:
    zone = _near(text, text.lower() if low is None else low, _FAILURE_HINTS)
    found = _TEST_FAILURE.search(zone) if zone else None
    return found.group(0).strip() if found else None


def _head_and_tail(text: str) -> str:
    """Where verdicts and test summaries are: the start and the end of long output."""
    return text if len(text) <= 4000 else text[:2000] + "\n" + text[-2000:]


def _excerpt(text: str, reason: str) -> str:
    at = text.lower().find(reason.lower())
    start = max(0, at - 60) if at >= 0 else 0
    return truncate(text[start : start + 200])


DETECTORS = [QualityRejection()]
