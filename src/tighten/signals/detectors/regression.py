"""Regressions: a friction signal that became more frequent after a new artifact version.

For each artifact the window's sessions ran with (``session.artifact_versions``, e.g.
``prompt``), versions are ordered by the first session that used them (sessions come
oldest first). The newest version is compared with the one before it: for every friction
signal type, the share of sessions with at least one such signal on each side, with a
two-sided two-proportion z-test (pooled normal approximation, p from ``math.erfc``).

A ``regression`` needs at least 20 sessions on each side, at least 3 sessions with the
signal under the new version, p < 0.05 and a relative rise of at least 25%. Target
``{artifact}@{version}:{signal type}``; the window signal lists up to 20 new-version
sessions that had the signal. Severity ``0.3 + 2 * rise`` in share points, at most 1
(12% → 31% gives 0.68); confidence ``1 - p``, at most 0.99.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from tighten.signals.model import DetectContext, SessionData, Signal, WindowSignal

__all__ = ["DETECTORS", "Regression", "two_proportion_p"]

MIN_SESSIONS = 20
MIN_HITS = 3
MAX_P = 0.05
MIN_RELATIVE_RISE = 0.25
MAX_SESSIONS = 20


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value that two proportions are equal (pooled z-test)."""
    pooled = (hits_a + hits_b) / (n_a + n_b)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (hits_b / n_b - hits_a / n_a) / se
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True, slots=True)
class _Side:
    version: str
    sessions: list[SessionData]


class Regression:
    """Friction that rose after an artifact's newest version."""

    name: ClassVar[str] = "rules.regression"

    def detect_window(
        self,
        agent: str,
        sessions: Sequence[SessionData],
        signals: Mapping[str, Sequence[Signal]],
        context: DetectContext,
    ) -> Iterable[WindowSignal]:
        found: list[WindowSignal] = []
        for artifact in sorted({a for s in sessions for a in s.artifact_versions}):
            sides = _last_two(artifact, sessions)
            if sides is None:
                continue
            old, new = sides
            old_types = _types(old.sessions, signals)
            new_types = _types(new.sessions, signals)
            for kind in sorted(new_types):
                signal = self._compare(agent, artifact, kind, old, new, old_types, new_types)
                if signal is not None:
                    found.append(signal)
        return found

    def _compare(
        self,
        agent: str,
        artifact: str,
        kind: str,
        old: _Side,
        new: _Side,
        old_types: dict[str, list[str]],
        new_types: dict[str, list[str]],
    ) -> WindowSignal | None:
        n_old, n_new = len(old.sessions), len(new.sessions)
        hits_old, hit_ids = len(old_types.get(kind, ())), new_types[kind]
        rate_old, rate_new = hits_old / n_old, len(hit_ids) / n_new
        if len(hit_ids) < MIN_HITS or rate_new < rate_old * (1 + MIN_RELATIVE_RISE):
            return None
        p = two_proportion_p(hits_old, n_old, len(hit_ids), n_new)
        if p >= MAX_P:
            return None
        return WindowSignal(
            type="regression",
            polarity="friction",
            severity=round(min(1.0, 0.3 + 2 * (rate_new - rate_old)), 3),
            description=f"{kind} rose from {rate_old:.0%} (n={n_old}) to {rate_new:.0%} "
            f"(n={n_new}) after {artifact} {new.version} (previous {old.version}, p={p:.3f})",
            detector=self.name,
            agent=agent,
            sessions=tuple(hit_ids[:MAX_SESSIONS]),
            confidence=round(min(0.99, 1 - p), 3),
            target=f"{artifact}@{new.version}:{kind}",
        )


def _last_two(artifact: str, sessions: Sequence[SessionData]) -> tuple[_Side, _Side] | None:
    """The previous and the newest version of ``artifact`` with their sessions, when both
    have enough sessions."""
    by_version: dict[str, list[SessionData]] = {}  # insertion order = first seen
    for session in sessions:
        version = session.artifact_versions.get(artifact)
        if version is not None:
            by_version.setdefault(version, []).append(session)
    if len(by_version) < 2:
        return None
    (old, old_sessions), (new, new_sessions) = list(by_version.items())[-2:]
    if len(old_sessions) < MIN_SESSIONS or len(new_sessions) < MIN_SESSIONS:
        return None
    return _Side(old, old_sessions), _Side(new, new_sessions)


def _types(
    sessions: list[SessionData], signals: Mapping[str, Sequence[Signal]]
) -> dict[str, list[str]]:
    """For each friction signal type, the ids of the sessions that had it."""
    found: dict[str, list[str]] = {}
    for session in sessions:
        kinds = {s.type for s in signals.get(session.session_id, ()) if s.polarity == "friction"}
        for kind in kinds:
            found.setdefault(kind, []).append(session.session_id)
    return found


DETECTORS = [Regression()]
