"""``tighten eval detect``: how well detection ranks failed sessions, on labelled data.

The files are ingested into a temporary store and their outcomes are **removed** before
detection runs, so nothing downstream can see them. The friction score is then judged
against ``outcome.success``: AUROC, average precision, precision among the 20% highest
scores and its lift over the base failure rate, each detector's firing rate among failed
and successful sessions, and two naive baselines (message count, failed tool results) for
comparison. Where sessions carry ``outcome.labels.failure_step`` / ``failure_agent``, the
post-mortem's decisive step and responsible agent are scored too.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update

from tighten.config import Settings
from tighten.errors import InputError
from tighten.signals.calibrate import cross_fit
from tighten.signals.detect import detect
from tighten.signals.load import load_sessions, load_signals
from tighten.signals.postmortem import postmortem
from tighten.signals.score import FEATURES
from tighten.store import open_store
from tighten.store.schema import session_metrics, sessions, signals
from tighten.traces.ingest import ingest_paths

__all__ = ["evaluate_detection", "ranking_figures"]


def ranking_figures(
    y: Sequence[int], scores: Sequence[float], top: float = 0.2
) -> dict[str, float]:
    """AUROC, average precision, precision in the top ``top`` share and its lift."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, values = np.asarray(y), np.asarray(scores, dtype=float)
    base = float(labels.mean())
    k = max(1, round(len(labels) * top))
    order = np.argsort(-values, kind="stable")
    precision = float(labels[order[:k]].mean())
    return {
        "auroc": float(roc_auc_score(labels, values)),
        "average_precision": float(average_precision_score(labels, values)),
        "precision_top20": precision,
        "lift_top20": precision / base if base else 0.0,
    }


def evaluate_detection(
    paths: Iterable[str | Path], *, cross_validated: bool = True
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tighten-eval-") as tmp:
        settings = Settings.load(database_url=f"sqlite:///{Path(tmp) / 'eval.db'}")
        store = open_store(settings)
        try:
            ingest_paths(store, paths, settings=settings)
            labels, extras = _take_outcomes(store)
            if len(set(labels.values())) < 2:
                raise InputError(
                    "Evaluation needs sessions with outcome.success both true and false."
                )
            detect(store)
            return _report(store, labels, extras, cross_validated)
        finally:
            store.close()


def _take_outcomes(store: Any) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """Read each session's outcome (1 = failed) and outcome labels, then erase every
    outcome from the store."""
    with store.begin() as conn:
        rows = conn.execute(select(sessions.c.session_id, sessions.c.outcome)).all()
        conn.execute(
            update(sessions).values(outcome=None, outcome_success=None, outcome_reward=None)
        )
    extras = {sid: (o or {}).get("labels") or {} for sid, o in rows}
    labels = {
        sid: 0 if o["success"] else 1
        for sid, o in rows
        if isinstance(o, dict) and isinstance(o.get("success"), bool)
    }
    return labels, extras


def _report(
    store: Any,
    labels: dict[str, int],
    extras: dict[str, dict[str, Any]],
    cross_validated: bool,
) -> dict[str, Any]:
    with store.connect() as conn:
        metric_rows = {
            r["session_id"]: r
            for r in conn.execute(select(session_metrics)).mappings()
            if r["session_id"] in labels
        }
        fired: dict[str, set[str]] = defaultdict(set)
        for sid, kind in conn.execute(select(signals.c.session_id, signals.c.type)):
            if sid in labels:
                fired[kind].add(sid)
    ids = sorted(metric_rows)
    y = [labels[s] for s in ids]
    result: dict[str, Any] = {
        "sessions": len(ids),
        "failures": int(sum(y)),
        "base_failure_rate": sum(y) / len(y),
        "friction_score": ranking_figures(y, [metric_rows[s]["friction_score"] for s in ids]),
        "baselines": {
            "message_count": ranking_figures(y, [metric_rows[s]["message_count"] for s in ids]),
            "failed_tool_results": ranking_figures(
                y, [metric_rows[s]["tool_failures"] for s in ids]
            ),
        },
        "detectors": _firing(fired, labels, ids),
    }
    if cross_validated and min(sum(y), len(y) - sum(y)) >= 5:
        x = np.array(
            [[(metric_rows[s]["features"] or {}).get(f, 0.0) for f in FEATURES] for s in ids]
        )
        result["calibrated_cross_fitted"] = ranking_figures(y, cross_fit(x, np.array(y)).tolist())
    steps = _postmortem_accuracy(store, extras)
    if steps:
        result["postmortem"] = steps
    return result


def _firing(fired: dict[str, set[str]], labels: dict[str, int], ids: list[str]) -> dict[str, Any]:
    failed = {s for s in ids if labels[s]}
    succeeded = set(ids) - failed
    out = {}
    for kind, hit in sorted(fired.items()):
        out[kind] = {
            "failed_rate": len(hit & failed) / len(failed) if failed else 0.0,
            "success_rate": len(hit & succeeded) / len(succeeded) if succeeded else 0.0,
        }
    return out


def _postmortem_accuracy(store: Any, extras: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    marked = {
        sid: extra
        for sid, extra in extras.items()
        if isinstance(extra.get("failure_step"), int) or extra.get("failure_agent")
    }
    if not marked:
        return None
    exact = near = steps = agent_hits = agents = 0
    with store.connect() as conn:
        for session in load_sessions(conn, sorted(marked)):
            found = load_signals(conn, [session.session_id])[session.session_id]
            pm = postmortem(session, found)
            truth = marked[session.session_id]
            if isinstance(truth.get("failure_step"), int) and pm.decisive is not None:
                steps += 1
                exact += pm.decisive.step == truth["failure_step"]
                near += abs(pm.decisive.step - truth["failure_step"]) <= 2
            if truth.get("failure_agent") and pm.decisive is not None:
                agents += 1
                agent_hits += pm.decisive.agent == truth["failure_agent"]
    return {
        "sessions_with_step": steps,
        "step_exact": exact / steps if steps else None,
        "step_within_2": near / steps if steps else None,
        "sessions_with_agent": agents,
        "agent_accuracy": agent_hits / agents if agents else None,
    }
