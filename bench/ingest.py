"""Ingest throughput and memory: prints one JSON line per measurement.

Each measurement runs in a fresh process, so its peak memory (max RSS) is its own. Two file
sizes per format show whether memory stays flat as files grow. PostgreSQL is measured when
the local server binaries are there (the same throwaway server the tests use).

    python bench/ingest.py [--sessions 20000] [--spans 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def worker(kind: str, path: str, url: str) -> None:
    from tighten.config import Settings
    from tighten.store import open_store
    from tighten.traces.ingest import ingest_paths

    settings = Settings.load(database_url=url)
    store = open_store(settings)
    started = time.perf_counter()
    report = ingest_paths(store, [path], settings=settings)
    elapsed = time.perf_counter() - started
    store.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"elapsed_s": elapsed, "report": report.as_dict(), "peak_rss_mib": peak_mib}))


def measure(
    kind: str, path: Path, url: str, units: int, unit: str, extra: dict[str, object]
) -> None:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(path), url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    elapsed = result["elapsed_s"]
    line = {
        "bench": f"ingest_{kind}",
        "dialect": url.split(":", 1)[0].split("+")[0],
        unit: units,
        f"{unit}_per_s": round(units / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "peak_rss_mib": round(result["peak_rss_mib"], 1),
        "accepted": result["report"]["accepted"],
        "rejected": result["report"]["rejected"],
        **extra,
    }
    if kind == "jsonl":
        line["messages_per_s"] = round(extra["messages"] / elapsed)  # type: ignore[operator]
    print(json.dumps(line), flush=True)


def databases(tmp: Path, label: str) -> list[tuple[str, object]]:
    """(url, cleanup) for SQLite and, when available, a throwaway PostgreSQL database."""
    from sqlalchemy import create_engine, text

    urls: list[tuple[str, object]] = [(f"sqlite:///{tmp / (label + '.db')}", None)]
    if PG is not None:
        engine = create_engine(PG.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {label}"))
            conn.execute(text(f"CREATE DATABASE {label}"))
        engine.dispose()
        urls.append((PG.url(label), None))
    return urls


PG = None


def main() -> None:
    global PG
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    from synth import write_otlp_jsonl, write_sessions

    if not args.no_postgres:
        from tests.pg import start_server

        try:
            PG = start_server()
        except (FileNotFoundError, RuntimeError) as exc:
            print(json.dumps({"bench": "postgres", "skipped": str(exc)}), flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            for factor in (1, 3):
                n = args.sessions * factor
                path = tmp / f"sessions-{n}.jsonl"
                messages = write_sessions(path, n)
                for url, _ in databases(tmp, f"jsonl_{n}"):
                    measure("jsonl", path, url, n, "sessions", {"messages": messages})
            for factor in (1, 3):
                traces = args.spans * factor // 10
                path = tmp / f"otlp-{traces}.jsonl"
                spans = write_otlp_jsonl(path, traces, spans_per_trace=10)
                for url, _ in databases(tmp, f"otlp_{traces}"):
                    measure("otlp_json", path, url, spans, "spans", {"sessions": traces})
    finally:
        if PG is not None:
            PG.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
    else:
        main()
