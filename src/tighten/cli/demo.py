"""``tighten demo``: the loop so far on the bundled example traces."""

from __future__ import annotations

import click
from rich.markup import escape

from tighten.cli.context import AppContext, pass_app
from tighten.cli.output import console
from tighten.cli.signals import render_detect
from tighten.cli.traces import render_report, render_stats
from tighten.errors import InputError
from tighten.signals.detect import detect
from tighten.traces.ingest import ingest_paths
from tighten.traces.query import list_sessions, list_signals
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
    with store.connect() as conn:
        render_stats(session_stats(conn))
    console.rule("[bold]2. detect[/] — friction and delight, per session")
    render_detect(detect(store))
    with store.connect() as conn:
        worst = list_sessions(conn, order="friction", limit=3)
        examples = {
            kind: list_signals(conn, type_=kind, limit=1)
            for kind in ("tool_failure_unrecovered", "error_loop", "unanswered_question",
                         "escalation", "frustration", "satisfaction")
        }  # fmt: skip
    console.print("[bold]What some signals look like:[/]")
    for kind, rows in examples.items():
        if rows:
            console.print(f"  [red]{kind}[/] — {escape(rows[0]['description'])}")
    console.rule("[bold]Next")
    lines = ["Read the sessions most likely to have failed their user:"]
    lines += [
        f"  tighten sessions show {r['session_id']}   (friction {r['friction_score']:.2f})"
        for r in worst
        if r["friction_score"] is not None
    ]
    lines += [
        "  tighten postmortem SESSION_ID        the decisive step and who took it",
        "  tighten signals list --type tool_failure",
        "  tighten eval detect FILE             how well friction ranks failures, on labelled data",
    ]
    console.print("\n".join(lines), markup=False)
    console.print(f"Database: {settings.resolved_database_url()}", markup=False)
