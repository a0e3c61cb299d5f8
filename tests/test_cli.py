"""The command line: every reading command has --json, errors are one line and exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE


def test_ingest_and_list_as_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(f"ingest {EXAMPLE} --json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["accepted"] == 200
    assert report["formats"] == {str(EXAMPLE): "jsonl"}
    listed = json.loads(cli("sessions list --outcome success --limit 500 --json").out)
    assert len(listed) == 84
    assert all(row["outcome_success"] is True for row in listed)
    assert set(listed[0]) >= {"session_id", "agent", "message_count", "tool_call_count"}


def test_sessions_show_renders_a_transcript_with_tool_calls(cli) -> None:  # type: ignore[no-untyped-def]
    cli(f"ingest {EXAMPLE}")
    sid = "tau-bench/airline/gpt-4o/task-000/trial-0"
    shown = cli(f"sessions show {sid}")
    assert shown.code == 0
    assert f"Session {sid}" in shown.out
    assert "→ get_user_details(" in shown.out
    assert "[1] user" in shown.out
    as_json = json.loads(cli(f"sessions show {sid} --json").out)
    assert as_json["session_id"] == sid
    assert len(as_json["messages"]) == as_json["message_count"]


def test_agent_option_overrides_the_input(cli) -> None:  # type: ignore[no-untyped-def]
    cli(f"ingest {EXAMPLE} --agent airline-bot")
    stats = json.loads(cli("stats --json").out)
    assert stats["agents"] == 1
    listed = json.loads(cli("sessions list --agent airline-bot --limit 1 --json").out)
    assert listed[0]["agent"] == "airline-bot"


def test_rejects_list_names_line_and_reason(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.jsonl"
    path.write_text('{"session_id": "a", "messages": []}\n[1, 2]\n')
    assert cli(f"ingest {path}").code == 0
    rows = json.loads(cli("rejects list --json").out)
    assert [(r["line"], r["reason"]) for r in rows] == [(2, "expected a JSON object, got a list")]


def test_missing_file_is_one_line_error(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("ingest /no/such/file.jsonl")
    assert result.code == 1
    assert result.err.strip() == "Error: No such file: /no/such/file.jsonl. Check the path."


def test_nothing_readable_exits_non_zero(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "junk.txt"
    path.write_text("this is not a trace\n")
    result = cli(f"ingest {path}")
    assert result.code == 1
    assert "1 rejected" in result.out


def test_unknown_session_and_bad_window_are_clear_errors(cli) -> None:  # type: ignore[no-untyped-def]
    missing = cli("sessions show nope")
    assert (missing.code, missing.err.count("\n")) == (1, 1)
    assert "No session 'nope'" in missing.err
    window = cli("sessions list --since yesterday-ish")
    assert window.code == 1
    assert "7d or 24h" in window.err


@pytest.mark.pristine
def test_db_upgrade_and_status(cli) -> None:  # type: ignore[no-untyped-def]
    status = json.loads(cli("db status --json").out)
    assert status["revision"] is None
    assert status["up_to_date"] is False
    upgraded = json.loads(cli("db upgrade --json").out)
    assert upgraded["before"] is None
    assert upgraded["after"] == status["head"]
    assert json.loads(cli("db status --json").out)["up_to_date"] is True


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_db_option_takes_a_path(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "elsewhere.db"
    assert cli(["--db", str(target), "ingest", str(EXAMPLE)]).code == 0
    assert target.exists()


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tighten", "--help"], capture_output=True, text=True, check=True
    )
    assert "ingest" in done.stdout
    assert "sessions" in done.stdout
