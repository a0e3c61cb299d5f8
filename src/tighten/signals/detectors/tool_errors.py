"""Tool calls that failed, failures the agent walked away from, and calls stuck in a loop.

A result fails when the source marked it (``status == "error"``, an ``error`` text) or
when its text has a failure shape (:func:`tighten.signals.text.failure_reason`: an
``Error:``/``Exception`` prefix, a traceback, a non-zero exit code, HTTP 4xx/5xx, a JSON
``{"error": …}``, a timeout, ``command not found``, pytest failures). ``grep``/``diff``
style commands that exit with 1 to answer "no" are not failures. Target: the tool name
(for text-protocol shells, the program the command ran: ``python``, ``pytest``).

=============================  ============================================================
signal                         severity / confidence
=============================  ============================================================
``tool_failure``               0.5 (0.3 for failing tests, which agents also run on
                               purpose); confidence 1.0 for a structured error, 0.7 to
                               0.95 by how unambiguous the text shape is
``tool_failure_unrecovered``   0.7: neither a later call of the same tool nor another
                               tool before the next user message follows the failure — the
                               agent gave up or answered the user directly
``error_loop``                 0.6 + 0.05 per call beyond three (max 0.9), +0.1 when every
                               call failed; confidence 0.9 when failures repeat, 0.7 when
                               identical calls only returned the same result again
=============================  ============================================================

An ``error_loop`` is a tool called 3+ times with the same arguments (JSON normalized:
parsed, keys sorted) or near-same ones (Jaccard ≥ 0.8 of argument tokens) where at least
two of the calls failed and the agent got nowhere (a failure text came back, or the last
call failed too — different failures ending in a success are exploration), or with
identical arguments that kept returning the same result (a re-run that returns something
new is progress, not a loop); or the same failure text 3+ times, whatever the arguments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from tighten.signals.detectors._conversation import Attempt, conversation
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import jaccard, truncate, words

__all__ = ["DETECTORS", "ErrorLoop", "ToolFailure", "UnrecoveredToolFailure"]

_CONFIDENCE = {
    "traceback": 0.95,
    "command not found": 0.95,
    "error message": 0.9,
    "JSON error field": 0.9,
    "edit rejected": 0.9,
    "test failures": 0.85,
    "missing file": 0.8,
    "exception": 0.8,
    "timeout": 0.7,
}
_NEAR = 0.8
_MIN_TOKENS = 4  # fewer argument tokens than this: only identical arguments match
_MIN_REPEATS = 3
_MAX_CLUSTERS = 8  # argument variants compared per tool, which bounds the work
_MAX_EVIDENCE = 20


def _confidence(attempt: Attempt) -> float:
    if attempt.structured:
        return 1.0
    reason = attempt.reason or ""
    if reason.startswith("exit code"):
        return 0.95
    if reason.startswith("HTTP"):
        return 0.9
    return _CONFIDENCE.get(reason, 0.8)


def _describe(attempt: Attempt) -> str:
    quote = f': "{attempt.error}"' if attempt.error else ""
    return f"{attempt.tool} failed ({attempt.reason}){quote}"


def _evidence(attempt: Attempt) -> tuple[int, ...]:
    if attempt.result_index is None or attempt.result_index == attempt.call_index:
        return (attempt.call_index,)
    return (attempt.call_index, attempt.result_index)


class ToolFailure:
    """``tool_failure``: every failed call."""

    name: ClassVar[str] = "rules.tool_failure"

    def detect(self, session: SessionData, context: DetectContext) -> Iterator[Signal]:
        for attempt in conversation(session).attempts:
            if attempt.failed:
                yield Signal(
                    type="tool_failure",
                    polarity="friction",
                    severity=0.3 if attempt.reason == "test failures" else 0.5,
                    description=_describe(attempt),
                    detector=self.name,
                    evidence=_evidence(attempt),
                    confidence=_confidence(attempt),
                    target=attempt.tool,
                    quote=attempt.error or None,
                )


class UnrecoveredToolFailure:
    """``tool_failure_unrecovered``: a failed call nothing follows up on."""

    name: ClassVar[str] = "rules.tool_failure_unrecovered"

    def detect(self, session: SessionData, context: DetectContext) -> Iterator[Signal]:
        view = conversation(session)
        for attempt in view.attempts:
            if attempt.failed and not view.recovered(attempt):
                after = max(attempt.call_index, attempt.result_index or 0) + 1
                shown = (after,) if after < len(session.messages) else ()
                yield Signal(
                    type="tool_failure_unrecovered",
                    polarity="friction",
                    severity=0.7,
                    description=f"{_describe(attempt)}, and the agent neither retried it "
                    "nor tried another tool",
                    detector=self.name,
                    evidence=_evidence(attempt) + shown,
                    confidence=_confidence(attempt),
                    target=attempt.tool,
                    quote=attempt.error or None,
                )


@dataclass(slots=True)
class _Cluster:
    arguments: str
    tokens: set[str]
    members: list[Attempt] = field(default_factory=list)


class ErrorLoop:
    """``error_loop``: the same call (or the same failure) again and again."""

    name: ClassVar[str] = "rules.error_loop"

    def detect(self, session: SessionData, context: DetectContext) -> Iterable[Signal]:
        attempts = conversation(session).attempts
        signals: list[Signal] = []
        if len(attempts) < _MIN_REPEATS:
            return signals
        covered: set[int] = set()
        for cluster in _candidates(attempts):
            signal = self._cluster_signal(cluster)
            if signal is not None:
                signals.append(signal)
                covered.update(id(a) for a in cluster.members)
        signals.extend(self._repeated_failures(attempts, covered))
        return signals

    def _cluster_signal(self, cluster: _Cluster) -> Signal | None:
        members = cluster.members
        count = len(members)
        failed = [a for a in members if a.failed]
        identical = all(a.arguments == cluster.arguments for a in members)
        same_result = count - len({a.result for a in members}) >= _MIN_REPEATS - 1
        stuck = len(failed) >= 2 and (
            members[-1].failed or len({a.error.lower() for a in failed}) < len(failed)
        )
        if count < _MIN_REPEATS or not (stuck or (identical and same_result)):
            return None
        tool = members[0].tool
        how = "the same arguments" if identical else "near-identical arguments"
        what = f"{len(failed)} failed" if failed else "each returned the same result"
        last_error = f' ("{failed[-1].error}")' if failed and failed[-1].error else ""
        severity = min(0.9, 0.6 + 0.05 * (count - _MIN_REPEATS))
        if len(failed) == count:
            severity = min(0.9, severity + 0.1)
        return Signal(
            type="error_loop",
            polarity="friction",
            severity=round(severity, 2),
            description=f"{tool} was called {count} times with {how}, {what}{last_error}",
            detector=self.name,
            evidence=_loop_evidence(members),
            confidence=0.9 if len(failed) >= 2 else 0.7,
            target=tool,
            quote=truncate(cluster.arguments, 160),
        )

    def _repeated_failures(self, attempts: list[Attempt], covered: set[int]) -> list[Signal]:
        by_text: dict[str, list[Attempt]] = {}
        for attempt in attempts:
            if attempt.failed and attempt.error:
                by_text.setdefault(attempt.error.lower(), []).append(attempt)
        signals = []
        for group in by_text.values():
            if len(group) < _MIN_REPEATS or all(id(a) in covered for a in group):
                continue
            tool = Counter(a.tool for a in group).most_common(1)[0][0]
            error = group[0].error
            signals.append(
                Signal(
                    type="error_loop",
                    polarity="friction",
                    severity=round(min(0.9, 0.6 + 0.05 * (len(group) - _MIN_REPEATS)), 2),
                    description=f'the same failure came back {len(group)} times: "{error}"',
                    detector=self.name,
                    evidence=_loop_evidence(group),
                    confidence=0.9,
                    target=tool,
                    quote=error,
                )
            )
        return signals


def _candidates(attempts: list[Attempt]) -> list[_Cluster]:
    """Groups of 3+ calls that may form a loop. Near-identical arguments only matter when
    two calls failed, so only tools with two failures are clustered by token overlap; the
    others just by identical arguments, which is a dictionary lookup."""
    failures = Counter(a.tool for a in attempts if a.failed)
    near = {tool for tool, count in failures.items() if count >= 2}
    exact: dict[tuple[str, str], list[Attempt]] = {}
    for attempt in attempts:
        if attempt.tool not in near:
            exact.setdefault((attempt.tool, attempt.arguments), []).append(attempt)
    found = [
        _Cluster(arguments, set(), members)
        for (_, arguments), members in exact.items()
        if len(members) >= _MIN_REPEATS
    ]
    for tool in sorted(near):
        found.extend(_clusters([a for a in attempts if a.tool == tool]))
    return found


def _clusters(attempts: list[Attempt]) -> list[_Cluster]:
    """Calls of one tool grouped by (near-)identical arguments; each call joins the first
    cluster whose first call it matches."""
    clusters: list[_Cluster] = []
    for attempt in attempts:
        tokens = set(words(attempt.arguments))
        for cluster in clusters:
            if cluster.arguments == attempt.arguments or (
                len(tokens) >= _MIN_TOKENS and jaccard(tokens, cluster.tokens) >= _NEAR
            ):
                cluster.members.append(attempt)
                break
        else:
            if len(clusters) < _MAX_CLUSTERS:
                clusters.append(_Cluster(attempt.arguments, tokens, [attempt]))
    return clusters


def _loop_evidence(attempts: list[Attempt]) -> tuple[int, ...]:
    indexes = {a.call_index for a in attempts}
    indexes.update(a.result_index for a in attempts if a.result_index is not None)
    return tuple(sorted(indexes)[:_MAX_EVIDENCE])


DETECTORS = [ToolFailure(), UnrecoveredToolFailure(), ErrorLoop()]
