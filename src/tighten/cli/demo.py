"""``tighten demo``: the loop so far on the bundled example traces."""

from __future__ import annotations

import click

from tighten.cli.context import AppContext, pass_app
from tighten.cli.output import console
from tighten.cli.traces import render_report, render_stats
from tighten.errors import InputError
from tighten.traces.ingest import ingest_paths
from tighten.traces.query import list_sessions
from tighten.traces.query import stats as session_stats

__all__ = ["demo"]


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@pass_app
def demo(app: AppContext, paths: tuple[str, ...]) -> None:
    """Run every step of the loop that exists so far on PATH... and summarise it."""
    store, settings = app.store(), app.settings()
    console.rule("[bold]1. observe[/] — ingest")
    report = ingest_paths(store, paths, settings=settings)
    render_report(report)
    if not report.read_anything:
        raise InputError("The demo traces could not be read; is the examples/ folder there?")
    console.rule("[bold]What the store holds")
    with store.connect() as conn:
        render_stats(session_stats(conn))
        failures = list_sessions(conn, outcome="failure", limit=1000)
    console.rule("[bold]Next")
    worst = max(failures, key=lambda r: r["tool_error_count"], default=None)
    console.print(
        f"{len(failures)} sessions ended in failure. Read one:\n"
        + (f"  tighten sessions show {worst['session_id']}\n" if worst else "")
        + "  tighten sessions list --outcome failure\n  tighten rejects list"
    )
    console.print(f"Database: {settings.resolved_database_url()}")
