"""``tighten calibrate``: refit the friction score on sessions whose outcome is known.

A logistic regression over the score's features (standardised), fitted on every analysed
session with a known outcome (``outcome.success``). Quality figures (AUROC, average
precision) are cross-validated, so they say how well the fit ranks sessions it has not
seen. The new fit becomes the agent's active calibration, and every analysed session is
rescored: labelled sessions with out-of-fold predictions (their own outcome never feeds
their own score), the others with the full fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, select, update

from tighten.audit import record as audit
from tighten.errors import InputError
from tighten.signals.score import DEFAULT_MODEL, FEATURES
from tighten.store import Store
from tighten.store.schema import calibrations, session_metrics, sessions

__all__ = ["CalibrationReport", "calibrate", "cross_fit"]

MIN_SESSIONS = 30
MIN_PER_CLASS = 8


@dataclass
class CalibrationReport:
    calibration_id: int
    agent: str | None
    sessions: int
    failures: int
    auroc: float
    average_precision: float
    default_auroc: float
    rescored: int
    weights: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "calibration_id": self.calibration_id,
            "agent": self.agent,
            "sessions": self.sessions,
            "failures": self.failures,
            "auroc": round(self.auroc, 4),
            "average_precision": round(self.average_precision, 4),
            "default_auroc": round(self.default_auroc, 4),
            "rescored": self.rescored,
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
        }


def _matrix(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[(r["features"] or {}).get(f, 0.0) for f in FEATURES] for r in rows])


def cross_fit(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities: each row scored by a model that never saw it."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(y))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y):
        out[test] = _fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return out


def _fit(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    return model.fit(x, y)


def _load(conn: Connection, agent: str | None) -> list[dict[str, Any]]:
    query = select(
        session_metrics.c.session_id,
        session_metrics.c.agent,
        session_metrics.c.features,
        session_metrics.c.friction_score,
        sessions.c.outcome_success,
    ).join(sessions, sessions.c.session_id == session_metrics.c.session_id)
    if agent is not None:
        query = query.where(session_metrics.c.agent == agent)
    return [dict(r) for r in conn.execute(query.order_by(session_metrics.c.session_id)).mappings()]


def calibrate(
    store: Store, *, agent: str | None = None, now: datetime | None = None
) -> CalibrationReport:
    """Fit, store and activate a calibration; rescore the analysed sessions."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    now = now or datetime.now(UTC)
    with store.connect() as conn:
        rows = _load(conn, agent)
    labelled = [r for r in rows if r["outcome_success"] is not None]
    y = np.array([0 if r["outcome_success"] else 1 for r in labelled])
    failures = int(y.sum())
    if len(labelled) < MIN_SESSIONS or min(failures, len(y) - failures) < MIN_PER_CLASS:
        raise InputError(
            f"Calibration needs at least {MIN_SESSIONS} analysed sessions with a known outcome "
            f"and {MIN_PER_CLASS} of each kind; found {len(labelled)} ({failures} failed). "
            "Ingest outcomes and run `tighten detect` first."
        )
    x = _matrix(labelled)
    oof = cross_fit(x, y)
    full = _fit(x, y)
    scaler, logistic = full.named_steps["standardscaler"], full.named_steps["logisticregression"]
    weights = dict(zip(FEATURES, map(float, logistic.coef_[0]), strict=True))
    default_auroc = float(
        roc_auc_score(y, [DEFAULT_MODEL.score(r["features"] or {}) for r in labelled])
    )
    scores = {r["session_id"]: float(p) for r, p in zip(labelled, oof, strict=True)}
    unlabelled = [r for r in rows if r["outcome_success"] is None]
    if unlabelled:
        predicted = full.predict_proba(_matrix(unlabelled))[:, 1]
        scores.update(
            {r["session_id"]: float(p) for r, p in zip(unlabelled, predicted, strict=True)}
        )
    auroc = float(roc_auc_score(y, oof))
    average_precision = float(average_precision_score(y, oof))
    calibration: dict[str, Any] = {
        "agent": agent,
        "method": "logistic_regression",
        "features": list(FEATURES),
        "coefficients": [weights[f] for f in FEATURES],
        "intercept": float(logistic.intercept_[0]),
        "scaling": {
            "means": dict(zip(FEATURES, map(float, scaler.mean_), strict=True)),
            "scales": dict(zip(FEATURES, map(float, scaler.scale_), strict=True)),
        },
        "sessions": len(labelled),
        "failures": failures,
        "auroc": auroc,
        "average_precision": average_precision,
        "active": True,
        "created_at": now,
    }
    with store.begin() as conn:
        calibration_id = _store(conn, calibration, scores, now)
    return CalibrationReport(
        calibration_id=calibration_id,
        agent=agent,
        sessions=len(labelled),
        failures=failures,
        auroc=auroc,
        average_precision=average_precision,
        default_auroc=default_auroc,
        rescored=len(scores),
        weights=weights,
    )


def _store(
    conn: Connection, calibration: dict[str, Any], scores: dict[str, float], now: datetime
) -> int:
    agent = calibration["agent"]
    match = calibrations.c.agent.is_(None) if agent is None else calibrations.c.agent == agent
    conn.execute(update(calibrations).where(match).values(active=False))
    inserted = conn.execute(calibrations.insert().values(**calibration)).inserted_primary_key
    assert inserted is not None
    calibration_id = int(inserted[0])
    stmt = (
        update(session_metrics)
        .where(session_metrics.c.session_id == bindparam("sid"))
        .values(friction_score=bindparam("score"))
    )
    if scores:
        conn.execute(stmt, [{"sid": sid, "score": score} for sid, score in scores.items()])
    audit(
        conn,
        actor="calibrate",
        action="calibrate",
        entity_type="calibration",
        entity_id=str(calibration_id),
        after={k: calibration[k] for k in ("agent", "sessions", "failures", "auroc")},
        now=now,
    )
    return calibration_id
