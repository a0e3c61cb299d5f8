"""Calibration, post-mortems and the evaluation harness."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.signals.test_detect import NOW, test_detectors  # noqa: F401 - fixture
from tighten.config import Settings
from tighten.errors import InputError
from tighten.signals.calibrate import calibrate
from tighten.signals.detect import Scorer, detect
from tighten.signals.evaluate import evaluate_detection, ranking_figures
from tighten.signals.model import SessionData, Signal
from tighten.signals.postmortem import postmortem
from tighten.store import Store
from tighten.store.schema import calibrations
from tighten.traces.ingest import ingest_sessions

pytestmark = pytest.mark.usefixtures("test_detectors")


def labelled(n: int, seed: int = 3) -> list[dict[str, object]]:
    """Sessions where failures usually (not always) contain an apology."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        failed = i % 2 == 0
        sorry = rng.random() < (0.8 if failed else 0.15)
        reply = "Sorry, I could not do that." if sorry else "All done."
        turns = [{"role": "user", "content": f"request {j}"} for j in range(rng.randint(1, 3))]
        rows.append({
            "session_id": f"s{i:03d}",
            "agent": "bot",
            "messages": [*turns, {"role": "assistant", "content": reply}],
            "outcome": {"success": not failed},
        })  # fmt: skip
    return rows


def test_calibration_learns_what_friction_means(store: Store, settings: Settings) -> None:
    ingest_sessions(store, labelled(80), settings=settings)
    detect(store, now=NOW)
    report = calibrate(store, now=NOW)
    assert report.sessions == 80
    assert report.auroc > 0.75
    assert report.weights["other_friction"] > 0
    with store.connect() as conn:
        active = conn.execute(
            select(calibrations).where(calibrations.c.active.is_(True))
        ).mappings().all()  # fmt: skip
        assert len(active) == 1
        assert Scorer(conn).model("bot").source == f"calibration {report.calibration_id}"
    again = calibrate(store, now=NOW)
    with store.connect() as conn:
        ids = conn.execute(
            select(calibrations.c.calibration_id).where(calibrations.c.active.is_(True))
        ).scalars().all()  # fmt: skip
    assert ids == [again.calibration_id]


def test_calibration_refuses_too_little_data(store: Store, settings: Settings) -> None:
    ingest_sessions(store, labelled(10), settings=settings)
    detect(store, now=NOW)
    with pytest.raises(InputError, match="at least 30 analysed sessions"):
        calibrate(store, now=NOW)


def test_postmortem_points_at_the_call_that_failed() -> None:
    session = SessionData.from_messages(
        [
            {"role": "user", "content": "book it"},
            {"role": "assistant", "content": "ok", "name": "planner"},
            {"role": "assistant", "content": "", "name": "booker",
             "tool_calls": [{"id": "1", "name": "book", "arguments": "{}"}]},
            {"role": "tool", "content": "Error: card declined", "tool_call_id": "1"},
            {"role": "assistant", "content": "Done!", "name": "booker"},
            {"role": "user", "content": "no, it is not booked"},
        ]
    )  # fmt: skip
    found = [
        Signal("tool_failure_unrecovered", "friction", 0.9, "book failed", "r", (2, 3)),
        Signal("correction", "friction", 0.6, "user corrects", "r", (5,)),
    ]
    result = postmortem(session, found)
    assert result.decisive is not None
    assert (result.decisive.step, result.decisive.agent) == (2, "booker")
    assert [c.step for c in result.alternatives] == [4]
    shape = result.as_dict()
    assert shape["decisive_step"] == 2
    assert shape["timeline"][3]["signals"] == ["tool_failure_unrecovered"]


def test_ranking_figures_on_a_known_case() -> None:
    figures = ranking_figures([1, 1, 0, 0, 0], [0.9, 0.8, 0.7, 0.1, 0.2])
    assert figures["auroc"] == pytest.approx(1.0)
    assert figures["precision_top20"] == pytest.approx(1.0)
    assert figures["lift_top20"] == pytest.approx(2.5)


def test_eval_detect_removes_outcomes_and_reports(tmp_path: Path) -> None:
    rows = labelled(60)
    for row in rows:
        if not row["outcome"]["success"]:  # type: ignore[index]
            row["outcome"]["labels"] = {"failure_step": len(row["messages"]) - 1}  # type: ignore[index, arg-type]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate_detection([path])
    assert result["sessions"] == 60
    assert result["failures"] == 30
    assert result["friction_score"]["auroc"] > result["baselines"]["message_count"]["auroc"]
    assert (
        result["detectors"]["apology"]["failed_rate"]
        > result["detectors"]["apology"]["success_rate"]
    )
    assert result["postmortem"]["sessions_with_step"] == 30
    assert 0 < result["postmortem"]["step_exact"] <= 1


def test_eval_and_postmortem_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in labelled(40)))
    out = json.loads(cli(f"eval detect {path} --json").out)
    assert set(out["friction_score"]) == {
        "auroc",
        "average_precision",
        "precision_top20",
        "lift_top20",
    }
    cli(f"ingest {path}")
    cli("detect")
    shown = json.loads(cli("postmortem s000 --json").out)
    assert shown["session_id"] == "s000"
    assert cli("postmortem nope").code == 1
    assert json.loads(cli("calibrate --json").out)["sessions"] == 40
