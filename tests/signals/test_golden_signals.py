"""A golden file of the signals found on the bundled example traces: every change to a
detector shows up as a readable diff in review. Regenerate with
``TIGHTEN_UPDATE_GOLDEN=1 make test`` and read the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import EXAMPLE
from tighten.config import Settings
from tighten.signals.detect import detect
from tighten.store import open_store
from tighten.store.schema import session_metrics, signals

GOLDEN = Path(__file__).parent.parent / "golden" / "signals-tau-bench.txt"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_signals_on_the_example_match_the_golden_file(settings: Settings) -> None:
    from datetime import UTC, datetime

    from tighten.traces.ingest import ingest_paths

    store = open_store(settings)
    ingest_paths(store, [EXAMPLE], settings=settings)
    detect(store, now=datetime(2026, 11, 1, tzinfo=UTC))
    lines: list[str] = []
    with store.connect() as conn:
        scores = dict(
            conn.execute(
                select(session_metrics.c.session_id, session_metrics.c.friction_score)
            ).all()
        )
        rows = conn.execute(
            select(signals.c.session_id, signals.c.type, signals.c.target, signals.c.evidence,
                   signals.c.severity, signals.c.description)
            .order_by(signals.c.session_id, signals.c.type, signals.c.signal_id)
        ).all()  # fmt: skip
    store.close()
    by_session: dict[str | None, list[str]] = {}
    for sid, kind, target, evidence, severity, description in rows:
        by_session.setdefault(sid, []).append(
            f"  {kind} [{target or '-'}] at {evidence} sev {severity:.2f}: {description}"
        )
    for sid in sorted(scores):
        lines.append(f"{sid} friction {scores[sid]:.3f}")
        lines.extend(by_session.get(sid, []))
    for line in by_session.get(None, []):
        lines.append(f"(window){line}")
    actual = "\n".join(lines) + "\n"
    if os.environ.get("TIGHTEN_UPDATE_GOLDEN") or not GOLDEN.exists():
        GOLDEN.write_text(actual)
    assert actual == GOLDEN.read_text(), f"signals changed: regenerate {GOLDEN.name} and review"
