"""Fixtures: a store on SQLite and on a throwaway PostgreSQL, and the CLI."""

from __future__ import annotations

import os
import re
import shlex
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.pg import PgServer, start_server
from tighten.cli.app import main
from tighten.config import Settings
from tighten.store import Store, open_store
from tighten.store.schema import metadata

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tau_bench_airline_gpt4o.jsonl.gz"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's ~/.tighten or environment settings."""
    for key in list(os.environ):
        if key.startswith("TIGHTEN_") and key != "TIGHTEN_UPDATE_GOLDEN":
            monkeypatch.delenv(key)
    monkeypatch.setenv("TIGHTEN_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = start_server()
    except (FileNotFoundError, RuntimeError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and could not start: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg_database(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[str]:
    """A fresh database per test module."""
    name = "t_" + re.sub(r"\W", "_", request.module.__name__)[-50:].lower()
    admin = create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield pg_server.url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each dialect; PostgreSQL tables are emptied before each test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tighten.db'}"
    url: str = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    with engine.begin() as conn:
        if request.node.get_closest_marker("pristine"):
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        existing = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )).scalars())  # fmt: skip
        tables = [t.name for t in metadata.sorted_tables if t.name in existing]
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.load(database_url=database_url)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, database_url: str
) -> Iterator[object]:
    """Run ``tighten`` in-process against the test database: ``cli("sessions list")``."""
    monkeypatch.setenv("TIGHTEN_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")

    def run(args: str | list[str]) -> CliResult:
        argv = shlex.split(args) if isinstance(args, str) else args
        capsys.readouterr()
        code = main(argv)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def sleeps() -> list[float]:
    """Collects the waits a client asked for: pass ``sleep=sleeps.append`` to it."""
    return []


@pytest.fixture
def closed_url() -> str:
    """A local URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
