"""A golden dump of the migrated schema per dialect makes every schema change visible in
review. Regenerate with ``TIGHTEN_UPDATE_GOLDEN=1 make test`` and read the diff."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import inspect

from tighten.store import Store

GOLDEN = Path(__file__).parent / "golden"


def dump(store: Store) -> str:
    lines: list[str] = []
    with store.connect() as conn:
        insp = inspect(conn)
        for table in sorted(insp.get_table_names()):
            lines.append(f"table {table}")
            for col in insp.get_columns(table):
                null = "" if col["nullable"] else " NOT NULL"
                tz = " WITH TIME ZONE" if getattr(col["type"], "timezone", False) else ""
                lines.append(f"  column {col['name']} {col['type']}{tz}{null}")
            pk = insp.get_pk_constraint(table)
            lines.append(f"  primary key {pk['constrained_columns']}")
            for fk in sorted(insp.get_foreign_keys(table), key=lambda f: f["constrained_columns"]):
                ondelete = fk.get("options", {}).get("ondelete")
                lines.append(
                    f"  foreign key {fk['constrained_columns']} -> {fk['referred_table']}"
                    f"{fk['referred_columns']}" + (f" ON DELETE {ondelete}" if ondelete else "")
                )
            for ix in sorted(insp.get_indexes(table), key=lambda i: i["name"] or ""):
                unique = "unique " if ix["unique"] else ""
                lines.append(f"  {unique}index {ix['name']} {ix['column_names']}")
            for uq in sorted(insp.get_unique_constraints(table), key=lambda u: u["name"] or ""):
                lines.append(f"  unique {uq['name']} {uq['column_names']}")
    return "\n".join(lines) + "\n"


def test_schema_matches_golden_dump(store: Store) -> None:
    path = GOLDEN / f"schema-{store.dialect}.txt"
    actual = dump(store)
    if os.environ.get("TIGHTEN_UPDATE_GOLDEN") or not path.exists():
        path.write_text(actual)
    assert actual == path.read_text(), f"schema changed: regenerate {path.name} and review it"
