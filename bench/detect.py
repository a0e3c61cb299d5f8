"""Detection throughput: prints one JSON line per measurement.

``detectors``: all registered per-session rule detectors over sessions held in memory, on
one core (the issue's goal: ≥ 5,000 sessions of ~30 messages per second). ``detect_step``:
the whole ``tighten detect`` step on SQLite, with loading, metrics, scoring and writes.

    python bench/detect.py [--sessions 5000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def pure_detectors(sessions: list, label: str) -> None:  # type: ignore[type-arg]
    from datetime import UTC, datetime

    from tighten.signals.detect import all_detectors, detect_session
    from tighten.signals.model import DetectContext

    detectors, _ = all_detectors()
    context = DetectContext(now=datetime.now(UTC))
    started = time.perf_counter()
    signals = sum(len(detect_session(s, detectors, context)) for s in sessions)
    elapsed = time.perf_counter() - started
    messages = sum(len(s.messages) for s in sessions)
    print(json.dumps({
        "bench": "detectors", "data": label, "detectors": len(detectors),
        "sessions": len(sessions), "mean_messages": round(messages / len(sessions), 1),
        "sessions_per_s": round(len(sessions) / elapsed), "signals": signals,
    }), flush=True)  # fmt: skip


def as_session_data(path: Path, repeat: int = 1) -> list:  # type: ignore[type-arg]
    from tighten.signals.model import SessionData
    from tighten.traces.formats.base import ReadContext
    from tighten.traces.formats.jsonl import parse_session

    opener = gzip.open if path.suffix == ".gz" else open
    loaded = []
    with opener(path, "rb") as f:
        for line in f:
            s = parse_session(json.loads(line), ReadContext(source="bench"))
            loaded.append(SessionData(s.session_id, s.agent, s.messages, s.tool_calls))
    return loaded * repeat


def detect_step(path: Path, count: int) -> None:
    from tighten.config import Settings
    from tighten.signals.detect import detect
    from tighten.store import open_store
    from tighten.traces.ingest import ingest_paths

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(database_url=f"sqlite:///{Path(tmp) / 'b.db'}")
        store = open_store(settings)
        ingest_paths(store, [path], settings=settings)
        report = detect(store)
        store.close()
    print(json.dumps({
        "bench": "detect_step", "dialect": "sqlite", "sessions": report.sessions,
        "sessions_per_s": round(report.sessions / report.seconds), "signals": report.signals,
    }), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=5000)
    args = parser.parse_args()
    from synth import write_sessions

    example = ROOT / "examples" / "tau_bench_airline_gpt4o.jsonl.gz"
    pure_detectors(as_session_data(example, repeat=10), "tau-bench example x10")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.jsonl"
        write_sessions(path, args.sessions)
        pure_detectors(as_session_data(path), "synthetic, 30 messages")
        detect_step(path, args.sessions)


if __name__ == "__main__":
    main()
