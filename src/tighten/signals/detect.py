"""``tighten detect``: run the detectors over sessions not yet analysed (or changed since),
store their signals, per-session metrics and friction score, then run the window
detectors for the agents involved. Each batch commits whole or not at all."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, desc, func, or_, select

from tighten.llm.base import Provider
from tighten.plugins import plugin_manager
from tighten.signals.judge import JudgeBudget, Judgement, judge_sessions, select_for_judging
from tighten.signals.load import build_context, load_sessions, load_signals
from tighten.signals.metrics import compute_metrics
from tighten.signals.model import (
    DetectContext,
    Detector,
    SessionData,
    Signal,
    WindowDetector,
    WindowSignal,
)
from tighten.signals.score import DEFAULT_MODEL, ScoreModel, features
from tighten.store import Store
from tighten.store.schema import calibrations, session_metrics, sessions, signals
from tighten.store.schema import judgements as judgement_rows
from tighten.traces.write import bulk_insert

__all__ = ["DetectReport", "Judge", "Scorer", "all_detectors", "detect", "detect_session"]


FLAG_SCORE = 0.5  # sessions at or above this friction score are sent to the judge


@dataclass
class Judge:
    """The optional LLM judge: which provider, under which budget, and how many of the
    sessions the rules did not flag it also reads."""

    provider: Provider
    model_name: str
    budget: JudgeBudget = field(default_factory=JudgeBudget)
    sample_rate: float = 0.05


@dataclass
class DetectReport:
    sessions: int = 0
    signals: int = 0
    window_signals: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)
    judged: int = 0
    judge_signals: int = 0
    judge_errors: int = 0
    judge_tokens: int = 0
    judge_cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "signals": self.signals,
            "window_signals": self.window_signals,
            "seconds": round(self.seconds, 3),
            "by_type": dict(sorted(self.by_type.items())),
            "judge": {
                "sessions": self.judged,
                "signals": self.judge_signals,
                "errors": self.judge_errors,
                "tokens": self.judge_tokens,
                "cost_usd": round(self.judge_cost_usd, 6),
            },
        }


def all_detectors() -> tuple[list[Detector], list[WindowDetector]]:
    """Registered detectors, per session and per window; a later registration with the
    same name replaces an earlier one."""
    by_name: dict[str, Detector | WindowDetector] = {}
    for group in reversed(plugin_manager().hook.register_detectors()):
        for det in group:
            by_name[det.name] = det
    per_session = [d for d in by_name.values() if hasattr(d, "detect")]
    window = [d for d in by_name.values() if hasattr(d, "detect_window")]
    return per_session, window  # type: ignore[return-value]


class Scorer:
    """Friction scores with the agent's active calibration, else the global one, else
    the default weights."""

    def __init__(self, conn: Connection) -> None:
        self.models: dict[str | None, ScoreModel] = {}
        query = select(calibrations).where(calibrations.c.active.is_(True))
        for row in conn.execute(query.order_by(calibrations.c.calibration_id)).mappings():
            self.models[row["agent"]] = ScoreModel.from_row(dict(row))

    def model(self, agent: str) -> ScoreModel:
        return self.models.get(agent) or self.models.get(None) or DEFAULT_MODEL


def detect_session(
    session: SessionData, detectors: Sequence[Detector], context: DetectContext
) -> list[Signal]:
    found: list[Signal] = []
    for det in detectors:
        found.extend(det.detect(session, context))
    return found


def _pending(
    conn: Connection, agent: str | None, since: datetime | None, full: bool, limit: int | None
) -> list[str]:
    query = select(sessions.c.session_id).outerjoin(
        session_metrics, session_metrics.c.session_id == sessions.c.session_id
    )
    if not full:
        query = query.where(
            or_(
                session_metrics.c.session_id.is_(None),
                session_metrics.c.analysed_hash != sessions.c.content_hash,
            )
        )
    if agent is not None:
        query = query.where(sessions.c.agent == agent)
    if since is not None:
        query = query.where(func.coalesce(sessions.c.started_at, sessions.c.ingested_at) >= since)
    query = query.order_by(sessions.c.session_id)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def detect(
    store: Store,
    *,
    agent: str | None = None,
    since: datetime | None = None,
    full: bool = False,
    limit: int | None = None,
    now: datetime | None = None,
    batch_size: int = 500,
    judge: Judge | None = None,
) -> DetectReport:
    """Analyse pending sessions (``full``: all of them) with the rules, then — with a
    ``judge`` — let the LLM read the flagged ones plus a sample, then run the window
    detectors of the agents involved."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    report = DetectReport()
    per_session, window = all_detectors()
    with store.connect() as conn:
        pending = _pending(conn, agent, since, full, limit)
        agents: set[str] = set()
        for i in range(0, len(pending), 5000):
            chunk = pending[i : i + 5000]
            query = select(sessions.c.agent).distinct().where(sessions.c.session_id.in_(chunk))
            agents.update(conn.execute(query).scalars())
        context = build_context(conn, agents, now)
        scorer = Scorer(conn)
    for start in range(0, len(pending), batch_size):
        ids = pending[start : start + batch_size]
        with store.begin() as conn:
            batch = load_sessions(conn, ids)
            _analyse_batch(conn, batch, per_session, context, scorer, now, report)
    if judge is not None and pending:
        _run_judge(store, judge, pending, per_session, context, scorer, now, report)
    if window and pending:
        for name in sorted(agents):
            report.window_signals += run_window(store, name, window, context, now)
    report.seconds = time.perf_counter() - started
    return report


def _analyse_batch(
    conn: Connection,
    batch: list[SessionData],
    detectors: Sequence[Detector],
    context: DetectContext,
    scorer: Scorer,
    now: datetime,
    report: DetectReport,
    extra: dict[str, list[Signal]] | None = None,
) -> None:
    """Detect, measure and score one batch and replace what was stored for it. ``extra``
    holds signals found by other means (the judge) that count like the rules' own."""
    hashes = dict(
        conn.execute(
            select(sessions.c.session_id, sessions.c.content_hash).where(
                sessions.c.session_id.in_([s.session_id for s in batch])
            )
        ).all()
    )
    signal_rows: list[dict[str, Any]] = []
    metric_rows: list[dict[str, Any]] = []
    for session in batch:
        found = detect_session(session, detectors, context)
        found += (extra or {}).get(session.session_id, [])
        metrics = compute_metrics(session, found)
        values = features(metrics, found)
        row = metrics.as_row()
        row.update(
            session_id=session.session_id,
            agent=session.agent,
            analysed_hash=hashes[session.session_id],
            analysed_at=now,
            features=values,
            friction_score=scorer.model(session.agent).score(values),
        )
        metric_rows.append(row)
        if row["friction_score"] >= FLAG_SCORE:
            report.flagged.append(session.session_id)
        signal_rows.extend(_signal_row(session, s, now) for s in found)
        for s in found:
            report.by_type[s.type] = report.by_type.get(s.type, 0) + 1
    ids = [s.session_id for s in batch]
    conn.execute(delete(signals).where(signals.c.session_id.in_(ids)))
    conn.execute(delete(session_metrics).where(session_metrics.c.session_id.in_(ids)))
    bulk_insert(conn, signals, signal_rows)
    bulk_insert(conn, session_metrics, metric_rows)
    report.sessions += len(batch)
    report.signals += len(signal_rows)


def _run_judge(
    store: Store,
    judge: Judge,
    analysed: list[str],
    detectors: Sequence[Detector],
    context: DetectContext,
    scorer: Scorer,
    now: datetime,
    report: DetectReport,
) -> None:
    """Judge the flagged sessions plus a sample; store each judgement and re-score the
    judged sessions with the judge's signals counted in."""
    chosen = select_for_judging(report.flagged, analysed, judge.sample_rate)
    chosen = chosen[: judge.budget.max_sessions]
    with store.connect() as conn:
        loaded = load_sessions(conn, chosen)
    judgements = judge_sessions(
        loaded, judge.provider, budget=judge.budget, model_name=judge.model_name
    )
    found = {j.session_id: list(j.signals) for j in judgements}
    rescore = DetectReport()
    with store.begin() as conn:
        _analyse_batch(conn, loaded, detectors, context, scorer, now, rescore, extra=found)
        bulk_insert(
            conn, judgement_rows, [_judgement_row(j, judge.model_name, now) for j in judgements]
        )
    report.judged += sum(1 for j in judgements if j.error is None)
    report.judge_errors += sum(1 for j in judgements if j.error is not None)
    report.judge_signals += sum(len(j.signals) for j in judgements)
    report.judge_tokens += sum(j.input_tokens + j.output_tokens for j in judgements)
    report.judge_cost_usd += sum(j.cost_usd or 0.0 for j in judgements)
    for j in judgements:
        for sig in j.signals:
            report.by_type[sig.type] = report.by_type.get(sig.type, 0) + 1


def _judgement_row(j: Judgement, model: str, now: datetime) -> dict[str, Any]:
    return {
        "session_id": j.session_id,
        "model": model,
        "input_tokens": j.input_tokens,
        "output_tokens": j.output_tokens,
        "cost_usd": j.cost_usd,
        "signal_count": len(j.signals),
        "error": j.error,
        "created_at": now,
    }


def _signal_row(session: SessionData, s: Signal, now: datetime) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "agent": session.agent,
        "scope": "session",
        "type": s.type,
        "polarity": s.polarity,
        "severity": s.severity,
        "target": s.target,
        "description": s.description,
        "evidence": list(s.evidence),
        "detector": s.detector,
        "confidence": s.confidence,
        "quote": s.quote,
        "sessions": None,
        "created_at": now,
    }


def run_window(
    store: Store,
    agent: str,
    detectors: Iterable[WindowDetector],
    context: DetectContext,
    now: datetime,
    max_sessions: int = 2000,
) -> int:
    """Run window detectors over the agent's most recent analysed sessions and replace
    the agent's window signals."""
    with store.begin() as conn:
        when = func.coalesce(sessions.c.started_at, sessions.c.ingested_at)
        ids = list(
            conn.execute(
                select(sessions.c.session_id)
                .where(sessions.c.agent == agent)
                .order_by(desc(when), sessions.c.session_id)
                .limit(max_sessions)
            ).scalars()
        )[::-1]
        window_sessions = load_sessions(conn, ids)
        by_session = load_signals(conn, ids)
        found: list[WindowSignal] = []
        for det in detectors:
            found.extend(det.detect_window(agent, window_sessions, by_session, context))
        conn.execute(
            delete(signals).where(and_(signals.c.agent == agent, signals.c.scope == "window"))
        )
        bulk_insert(conn, signals, [_window_row(w, now) for w in found])
    return len(found)


def _window_row(w: WindowSignal, now: datetime) -> dict[str, Any]:
    return {
        "session_id": None,
        "agent": w.agent,
        "scope": "window",
        "type": w.type,
        "polarity": w.polarity,
        "severity": w.severity,
        "target": w.target,
        "description": w.description,
        "evidence": [],
        "detector": w.detector,
        "confidence": w.confidence,
        "quote": w.quote,
        "sessions": list(w.sessions),
        "created_at": now,
    }
