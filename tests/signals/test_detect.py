"""The detection pipeline: incremental, stores signals, metrics and scores, runs window
detectors, and never shows a detector the outcome."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import func, select

from tighten.config import Settings
from tighten.hookspecs import hookimpl
from tighten.plugins import plugin_manager
from tighten.signals.detect import detect
from tighten.signals.model import DetectContext, SessionData, Signal, WindowSignal
from tighten.store import Store
from tighten.store.schema import session_metrics, signals
from tighten.traces.ingest import ingest_sessions
from tighten.traces.query import get_session, list_sessions

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class SaysSorry:
    name: ClassVar[str] = "test.sorry"
    seen: ClassVar[list[SessionData]] = []

    def detect(self, session: SessionData, context: DetectContext) -> list[Signal]:
        SaysSorry.seen.append(session)
        return [
            Signal("apology", "friction", 0.8, f"the agent apologised at {i}", self.name, (i,))
            for i, m in enumerate(session.messages)
            if m["role"] == "assistant" and "sorry" in m["content"].lower()
        ]


class CountsApologies:
    name: ClassVar[str] = "test.window"

    def detect_window(
        self,
        agent: str,
        sessions: Sequence[SessionData],
        found: Mapping[str, Sequence[Signal]],
        context: DetectContext,
    ) -> list[WindowSignal]:
        sorry = tuple(sid for sid, sigs in found.items() if any(s.type == "apology" for s in sigs))
        if not sorry:
            return []
        text = f"{len(sorry)} of {len(sessions)} sessions apologise"
        return [WindowSignal("apology_habit", "friction", 0.5, text, self.name, agent, sorry)]


class TestPlugin:
    @hookimpl
    def register_detectors(self) -> list[object]:
        return [SaysSorry(), CountsApologies()]


@pytest.fixture
def test_detectors() -> Iterator[None]:
    plugin = TestPlugin()
    plugin_manager().register(plugin)
    SaysSorry.seen.clear()
    yield
    plugin_manager().unregister(plugin)


def session(sid: str, reply: str, success: bool) -> dict[str, object]:
    return {
        "session_id": sid,
        "agent": "bot",
        "messages": [
            {"role": "user", "content": "where is my parcel?"},
            {"role": "assistant", "content": reply},
        ],
        "outcome": {"success": success},
    }


@pytest.mark.usefixtures("test_detectors")
def test_detect_stores_signals_metrics_and_scores(store: Store, settings: Settings) -> None:
    ingest_sessions(
        store,
        [session("a", "Sorry, I cannot see it.", False), session("b", "It arrives today.", True)],
        settings=settings,
    )
    report = detect(store, now=NOW)
    assert report.sessions == 2
    assert report.by_type.get("apology") == 1
    assert report.window_signals == 1
    with store.connect() as conn:
        a = get_session(conn, "a")
        window = conn.execute(select(signals).where(signals.c.scope == "window")).mappings().one()
    assert a is not None
    mine = [s for s in a["signals"] if s["detector"] == "test.sorry"]
    assert [s["type"] for s in mine] == ["apology"]
    assert mine[0]["evidence"] == [1]
    assert a["metrics"]["message_count"] == 2
    assert window["sessions"] == ["a"]
    assert window["agent"] == "bot"
    with store.connect() as conn:
        rows = {r["session_id"]: r for r in list_sessions(conn, order="friction")}
    assert rows["a"]["friction_score"] > rows["b"]["friction_score"]
    assert "apology" in rows["a"]["signal_types"]


@pytest.mark.usefixtures("test_detectors")
def test_detect_is_incremental_and_reanalyses_changed_sessions(
    store: Store, settings: Settings
) -> None:
    ingest_sessions(store, [session("a", "Sorry.", False)], settings=settings)
    assert detect(store, now=NOW).sessions == 1
    assert detect(store, now=NOW).sessions == 0
    ingest_sessions(store, [session("a", "Here it is.", True)], settings=settings)
    again = detect(store, now=NOW)
    assert again.sessions == 1
    with store.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(signals).where(signals.c.type == "apology")
        ).scalar_one()
        metrics = conn.execute(select(func.count()).select_from(session_metrics)).scalar_one()
    assert count == 0
    assert metrics == 1
    assert detect(store, now=NOW, full=True).sessions == 1


@pytest.mark.usefixtures("test_detectors")
def test_detectors_never_see_the_outcome(store: Store, settings: Settings) -> None:
    ingest_sessions(store, [session("a", "Sorry.", False)], settings=settings)
    detect(store, now=NOW)
    seen = SaysSorry.seen[0]
    assert not hasattr(seen, "outcome")
    assert "success" not in json.dumps(seen.messages)


@pytest.mark.usefixtures("test_detectors")
def test_detect_and_signals_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sessions.jsonl"
    rows = [session("a", "Sorry!", False), session("b", "Done.", True)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli(f"ingest {path}").code == 0
    report = json.loads(cli("detect --json").out)
    assert report["sessions"] == 2
    listed = json.loads(cli("signals list --type apology --json").out)
    assert [r["session_id"] for r in listed] == ["a"]
    ranked = json.loads(cli("sessions list --sort friction --json").out)
    assert ranked[0]["session_id"] == "a"
    shown = cli("sessions show a")
    assert "◀ apology" in shown.out
    assert "friction score" in shown.out


def test_detect_with_a_judge_stores_its_signals_and_costs(store: Store, settings: Settings) -> None:
    from tighten.llm.scripted import ScriptedProvider
    from tighten.signals.detect import Judge
    from tighten.signals.judge import JudgeBudget
    from tighten.store.schema import judgements

    answer = json.dumps({"signals": [{
        "type": "wrong_parcel", "polarity": "friction", "severity": 0.9,
        "description": "The agent described someone else's parcel.", "evidence": [1],
        "confidence": 0.8,
    }]})  # fmt: skip
    provider = ScriptedProvider(responses=[answer] * 5)
    ingest_sessions(store, [session(f"s{i}", "It arrives today.", True) for i in range(3)],
                    settings=settings)  # fmt: skip
    judge = Judge(provider, "scripted", JudgeBudget(max_sessions=2), sample_rate=1.0)
    report = detect(store, now=NOW, judge=judge)
    assert report.judged == 2
    assert report.judge_signals == 2
    with store.connect() as conn:
        rows = conn.execute(select(judgements)).mappings().all()
        judged = conn.execute(
            select(signals.c.session_id).where(signals.c.detector == "judge:scripted")
        ).scalars().all()  # fmt: skip
        scores = dict(conn.execute(
            select(session_metrics.c.session_id, session_metrics.c.friction_score)
        ).all())  # fmt: skip
    assert len(rows) == 2
    assert all(r["error"] is None and r["input_tokens"] > 0 for r in rows)
    assert len(judged) == 2
    unjudged = ({"s0", "s1", "s2"} - set(judged)).pop()
    assert all(scores[sid] > scores[unjudged] for sid in judged)
