"""The store: migrations on both dialects match the schema, and audit is append-only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text

from tighten.audit import record
from tighten.config import Settings
from tighten.errors import StoreError
from tighten.store import Store, open_store
from tighten.store.schema import audit_events, metadata

VOCABULARY = {
    "agents", "artifacts", "artifact_versions", "labels", "label_moves", "sessions",
    "messages", "tool_calls", "spans", "signals", "patterns", "proposals", "cycles",
    "feedback", "experiments", "assignments", "audit_events", "rejects",
}  # fmt: skip


def test_migrated_schema_has_every_table_of_the_vocabulary(store: Store) -> None:
    with store.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert tables >= VOCABULARY
    assert store.current_revision() == store.head_revision()


def test_migrations_produce_exactly_the_declared_schema(store: Store) -> None:
    with store.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent(store: Store) -> None:
    head = store.head_revision()
    assert store.upgrade() == (head, head)


def test_sqlite_store_uses_wal(tmp_path) -> None:
    opened = open_store(Settings.load(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    with opened.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_foreign_tables_without_schema_version_are_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id INTEGER)"))
    with pytest.raises(StoreError, match="no tighten schema version"):
        open_store(Settings.load(database_url=url))


def test_audit_event_rolls_back_with_its_transaction(store: Store) -> None:
    class Boom(Exception):
        pass

    def failing_change() -> None:
        with store.begin() as conn:
            record(conn, actor="owner", action="deploy", entity_type="artifact", entity_id="x")
            raise Boom

    with pytest.raises(Boom):
        failing_change()
    with store.begin() as conn:
        record(
            conn,
            actor="owner",
            action="deploy",
            entity_type="artifact",
            entity_id="y",
            before={"version": 1},
            after={"version": 2},
            reason="approved in chat",
            now=datetime(2026, 11, 1, tzinfo=UTC),
        )
    with store.connect() as conn:
        rows = conn.execute(select(audit_events)).mappings().all()
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar() == 1
    assert rows[0]["entity_id"] == "y"
    assert rows[0]["after"] == {"version": 2}


def test_unreachable_postgres_is_one_clear_error() -> None:
    settings = Settings.load(database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match=r"Cannot open the database|Database error"):
        open_store(settings)
