"""Ingestion: idempotent, atomic per batch, and bad records never take good ones down."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import EXAMPLE
from tighten.config import Settings
from tighten.store import Store
from tighten.store.schema import messages, rejects, sessions, tool_calls
from tighten.traces.ingest import ingest_paths, ingest_sessions
from tighten.traces.query import get_session


def count(store: Store, table) -> int:  # type: ignore[no-untyped-def]
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def example_lines() -> int:
    with gzip.open(EXAMPLE, "rt", encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def session_line(session_id: str, **extra: object) -> dict[str, object]:
    return {
        "session_id": session_id,
        "messages": [
            {"role": "user", "content": "book me a flight"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c1", "name": "search", "arguments": '{"to": "NYC"}'}],
            },
            {
                "role": "tool",
                "content": "Error: no flights",
                "tool_call_id": "c1",
                "name": "search",
            },
            {"role": "assistant", "content": "Sorry, nothing found."},
        ],
        **extra,
    }


def write_jsonl(path: Path, lines: list[object]) -> Path:
    with path.open("wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else json.dumps(line).encode())
            f.write(b"\n")
    return path


def test_example_ingested_twice_keeps_one_session_per_line(
    store: Store, settings: Settings
) -> None:
    lines = example_lines()
    first = ingest_paths(store, [EXAMPLE], settings=settings)
    assert (first.accepted, first.updated, first.rejected) == (lines, 0, 0)
    second = ingest_paths(store, [EXAMPLE], settings=settings)
    assert (second.accepted, second.updated, second.unchanged) == (0, 0, lines)
    assert count(store, sessions) == lines
    assert count(store, messages) == lines
    with store.connect() as conn:
        calls = conn.execute(select(func.sum(sessions.c.tool_call_count))).scalar_one()
        assert calls == count(store, tool_calls) > 0


def test_example_transcript_joins_tool_calls_with_results(store: Store, settings: Settings) -> None:
    ingest_paths(store, [EXAMPLE], settings=settings)
    with store.connect() as conn:
        sid = conn.execute(
            select(sessions.c.session_id).where(sessions.c.tool_call_count > 3).limit(1)
        ).scalar_one()
        session = get_session(conn, sid)
    assert session is not None
    assert session["outcome_success"] in (True, False)
    first_call = session["tool_calls"][0]
    assistant = session["messages"][first_call["message_index"]]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["name"] == first_call["name"]
    assert first_call["result"] is not None
    assert first_call["status"] == "ok"


def test_bad_lines_are_quarantined_and_good_ones_kept(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    huge = json.dumps({"session_id": "huge", "messages": [], "blob": "x" * (50 * 1024 * 1024)})
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            session_line("good-1"),
            b'{"session_id": "trunc", "messages": [{"role": "us',
            session_line("good-2"),
            {"session_id": "wrong-type", "messages": 42},
            huge.encode(),
            b'{"session_id": "bad-utf8", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
            {"messages": []},
            session_line("good-3"),
        ],
    )
    report = ingest_paths(store, [path], settings=settings)
    assert report.accepted == 3
    assert report.rejected == 5
    with store.connect() as conn:
        stored = set(conn.execute(select(sessions.c.session_id)).scalars())
        bad = {r.line: r.reason for r in conn.execute(select(rejects.c.line, rejects.c.reason))}
    assert stored == {"good-1", "good-2", "good-3"}
    assert set(bad) == {2, 4, 5, 6, 7}
    assert "invalid JSON" in bad[2]
    assert "messages must be a list, got a number" in bad[4]
    assert "over the limit" in bad[5]
    assert "max_record_bytes" in bad[5]
    assert "UTF-8" in bad[6]
    assert "missing session_id" in bad[7]


def test_reingesting_a_bad_file_does_not_duplicate_rejects(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [b"{nope", session_line("ok")])
    ingest_paths(store, [path], settings=settings)
    ingest_paths(store, [path], settings=settings)
    assert count(store, rejects) == 1


def test_oversized_field_is_rejected_with_its_name(
    store: Store, tmp_path: Path, database_url: str
) -> None:
    small = Settings.load(database_url=database_url, max_field_chars=100)
    line = session_line("long")
    line["messages"][0]["content"] = "y" * 101  # type: ignore[index]
    report = ingest_paths(store, [write_jsonl(tmp_path / "l.jsonl", [line])], settings=small)
    assert report.rejected == 1
    assert "messages[0].content is 101 characters" in report.reject_samples[0][2]


def test_fuller_copy_of_a_session_updates_it(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    short = session_line("s1")
    longer = session_line("s1")
    longer["messages"].append({"role": "user", "content": "thanks!"})  # type: ignore[attr-defined]
    ingest_paths(store, [write_jsonl(tmp_path / "a.jsonl", [short])], settings=settings)
    report = ingest_paths(store, [write_jsonl(tmp_path / "b.jsonl", [longer])], settings=settings)
    assert (report.accepted, report.updated, report.unchanged) == (0, 1, 0)
    with store.connect() as conn:
        session = get_session(conn, "s1")
    assert session is not None
    assert session["message_count"] == 5 == len(session["messages"])
    assert len(session["tool_calls"]) == 1
    assert count(store, tool_calls) == 1


def test_structured_tool_error_and_usage_are_stored(store: Store, settings: Settings) -> None:
    line = session_line("s2", usage={"prompt_tokens": 100, "completion_tokens": 20, "cost": 0.01})
    line["messages"][2]["is_error"] = True  # type: ignore[index]
    ingest_sessions(store, [line], settings=settings)
    with store.connect() as conn:
        session = get_session(conn, "s2")
    assert session is not None
    assert (session["input_tokens"], session["output_tokens"]) == (100, 20)
    assert session["cost_usd"] == pytest.approx(0.01)
    assert session["tool_error_count"] == 1
    assert session["tool_calls"][0]["status"] == "error"


def test_openai_chat_completions_messages(store: Store, settings: Settings) -> None:
    line = {
        "session_id": "oa",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "describe", "arguments": "{\"detail\": \"high\"}"},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "assistant", "content": "A cat."},
        ],
    }  # fmt: skip
    ingest_sessions(store, [line], settings=settings)
    with store.connect() as conn:
        session = get_session(conn, "oa")
    assert session is not None
    roles = [m["role"] for m in session["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert session["messages"][1]["media"] == ["image"]
    assert session["messages"][2]["tool_calls"] == [
        {"id": "call_1", "name": "describe", "arguments": '{"detail": "high"}'}
    ]
    assert session["tool_calls"][0]["result"] == "a cat"


def test_anthropic_content_blocks(store: Store, settings: Settings) -> None:
    line = {
        "session_id": "an",
        "system": "You are a support bot.",
        "messages": [
            {"role": "user", "content": "Refund order 7"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "check order"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "tu_1", "name": "refund", "input": {"order": 7}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "is_error": True,
                 "content": [{"type": "text", "text": "order 7 not found"}]},
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "I could not find it."}]},
        ],
    }  # fmt: skip
    ingest_sessions(store, [line], settings=settings)
    with store.connect() as conn:
        session = get_session(conn, "an")
    assert session is not None
    msgs = session["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert msgs[2]["content"] == "Checking."
    assert msgs[2]["tool_calls"] == [{"id": "tu_1", "name": "refund", "arguments": '{"order":7}'}]
    assert msgs[3] == {
        "role": "tool", "content": "order 7 not found", "tool_call_id": "tu_1", "is_error": True
    }  # fmt: skip
    assert session["tool_calls"][0]["status"] == "error"


def test_truncated_gzip_keeps_the_records_before_the_cut(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    data = gzip.compress(EXAMPLE.read_bytes() and gzip.decompress(EXAMPLE.read_bytes()))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    report = ingest_paths(store, [cut], settings=settings)
    assert 0 < report.accepted < example_lines()
    assert report.rejected == 1
    assert "ends early" in report.reject_samples[0][2]


def test_stdin_is_read_with_a_dash(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = (json.dumps(session_line("from-stdin")) + "\n").encode()
    fake = io.TextIOWrapper(io.BytesIO(payload))
    monkeypatch.setattr(sys, "stdin", fake)
    report = ingest_paths(store, ["-"], settings=settings)
    assert report.accepted == 1


def test_killed_ingest_leaves_only_whole_sessions(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(30_000):
            f.write(json.dumps(session_line(f"s{i:05d}")) + "\n")
    env = {**os.environ, "TIGHTEN_DATABASE_URL": database_url, "TIGHTEN_INGEST_BATCH_SIZE": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tighten", "ingest", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while count(store, sessions) < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = count(store, sessions)
    assert 0 < stored < 30_000, "the kill should land mid-file"
    assert stored % 200 == 0, "only whole batches are committed"
    with store.connect() as conn:
        assert count(store, messages) == stored
        bodies = conn.execute(select(sessions.c.message_count, messages.c.message_count).join(
            messages, messages.c.session_id == sessions.c.session_id
        )).all()  # fmt: skip
        assert all(a == b == 4 for a, b in bodies)
        assert count(store, tool_calls) == stored
    settings = Settings.load(database_url=database_url)
    report = ingest_paths(store, [path], settings=settings)
    assert (report.accepted, report.unchanged) == (30_000 - stored, stored)


def test_an_older_shorter_copy_never_replaces_a_fuller_one(
    store: Store, settings: Settings
) -> None:
    longer = session_line("s1")
    longer["messages"].append({"role": "user", "content": "thanks!"})  # type: ignore[attr-defined]
    ingest_sessions(store, [longer], settings=settings)
    report = ingest_sessions(store, [session_line("s1")], settings=settings)
    assert (report.updated, report.stale) == (0, 1)
    with store.connect() as conn:
        assert get_session(conn, "s1")["message_count"] == 5  # type: ignore[index]


def test_over_long_text_fields_are_cut_not_fatal(store: Store, settings: Settings) -> None:
    line = session_line("long-fields", channel="c" * 900, model="m" * 900, source="s" * 900)
    report = ingest_sessions(store, [line, session_line("neighbour")], settings=settings)
    assert report.accepted == 2
    with store.connect() as conn:
        stored = get_session(conn, "long-fields")
    assert stored is not None
    assert len(stored["channel"]) == 100
    assert len(stored["model"]) == 200


def test_a_short_truncated_gzip_is_one_reject(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    data = gzip.compress(
        b"".join(json.dumps(session_line(f"g{i}")).encode() + b"\n" for i in range(50))
    )
    cut = tmp_path / "short.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    report = ingest_paths(store, [cut], settings=settings)
    assert report.rejected == 1
    assert "ends early" in report.reject_samples[0][2]


def test_anthropic_thinking_becomes_reasoning(store: Store, settings: Settings) -> None:
    line = {
        "session_id": "think",
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "simple sum"},
                {"type": "text", "text": "4"},
            ]},
        ],
    }  # fmt: skip
    ingest_sessions(store, [line], settings=settings)
    with store.connect() as conn:
        session = get_session(conn, "think")
    assert session is not None
    assert session["messages"][1] == {
        "role": "assistant",
        "content": "4",
        "reasoning": "simple sum",
    }


def test_concurrent_ingests_of_the_same_data_on_a_new_database(
    database_url: str, tmp_path: Path, store: Store
) -> None:
    path = tmp_path / "same.jsonl"
    path.write_text("".join(json.dumps(session_line(f"c{i:04d}")) + "\n" for i in range(3000)))
    fresh = database_url
    if database_url.startswith("sqlite"):
        fresh = f"sqlite:///{tmp_path / 'fresh.db'}"  # a database nobody created yet
    env = {**os.environ, "TIGHTEN_DATABASE_URL": fresh, "TIGHTEN_INGEST_BATCH_SIZE": "100"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tighten", "ingest", str(path), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    reports = [json.loads(out) for out, _ in results]
    assert sum(r["accepted"] for r in reports) == 3000
    from tighten.store import open_store

    other = open_store(Settings.load(database_url=fresh))
    assert count(other, sessions) == 3000
    other.close()


def test_empty_input_is_not_an_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli(f"ingest {empty}")
    assert result.code == 0
    assert "no records" in result.out
