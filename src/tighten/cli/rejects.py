"""``tighten rejects list``: input records that could not be used, and why."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, fmt_time, print_json
from tighten.traces.query import list_rejects

__all__ = ["group"]


@click.group("rejects")
def group() -> None:
    """Input records that were quarantined, with the reason."""


@group.command("list")
@click.option("--source", help="Only records from this file.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most this many."
)
@json_option
@pass_app
def list_(app: AppContext, source: str | None, limit: int, as_json: bool) -> None:
    """Rejected records, newest first: where they were, why, and how they began."""
    with app.store().connect() as conn:
        rows = list_rejects(conn, source=source, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No rejected records.")
        return
    table = Table()
    for col in ("source", "line", "reason", "excerpt", "received"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            escape(r["source"]),
            str(r["line"] or "—"),
            escape(r["reason"]),
            escape(r["excerpt"][:80]),
            fmt_time(r["received_at"]),
        )
    console.print(table)
