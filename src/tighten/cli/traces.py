"""``tighten ingest`` and ``tighten stats``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, err_console, fmt_time, print_json
from tighten.config import Settings
from tighten.errors import InputError
from tighten.store import Store
from tighten.traces.ingest import IngestReport, ingest_paths
from tighten.traces.query import stats as session_stats

__all__ = ["ingest", "render_report", "render_stats", "stats"]


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--agent", help="Agent name for every session (overrides the input's).")
@json_option
@pass_app
def ingest(app: AppContext, paths: tuple[str, ...], agent: str | None, as_json: bool) -> None:
    """Ingest traces: JSONL sessions or OTLP (JSON or protobuf), plain or .gz; - reads
    standard input.

    Idempotent: the same data twice changes nothing. Bad records are quarantined (see
    `tighten rejects list`) and never stop the good ones. Exits 1 only when nothing could
    be read at all.
    """
    for path in paths:
        if path != "-" and not Path(path).is_file():
            raise InputError(f"No such file: {path}. Check the path.")
    store, settings = app.store(), app.settings()
    if err_console.is_terminal and not as_json:
        report = _with_progress(store, list(paths), settings, agent)
    else:
        report = ingest_paths(store, paths, settings=settings, agent=agent)
    if as_json:
        print_json(report.as_dict())
    else:
        render_report(report)
    if not report.read_anything and report.rejected:
        raise click.exceptions.Exit(1)


def _with_progress(
    store: Store, paths: list[str], settings: Settings, agent: str | None
) -> IngestReport:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(path: str, done: int, total: int | None) -> None:
            if path not in tasks:
                tasks[path] = bar.add_task(Path(path).name, total=total)
            bar.update(tasks[path], completed=done)

        return ingest_paths(store, paths, settings=settings, agent=agent, on_progress=update)


def render_report(report: IngestReport) -> None:
    spans = f" ({report.spans} spans stored)" if report.spans else ""
    stale = f", {report.stale} older copies skipped" if report.stale else ""
    console.print(
        f"Ingested: {report.accepted} new, {report.updated} updated, "
        f"{report.unchanged} unchanged{stale}, {report.rejected} rejected{spans}."
    )
    for source, line, reason in report.reject_samples[:10]:
        where = f"{source}:{line}" if line is not None else source
        console.print(f"  rejected {where}: {reason}", markup=False)
    if report.rejected > 10:
        console.print("  … `tighten rejects list` shows all of them.")
    if not report.read_anything:
        if report.rejected:
            err_console.print("Nothing could be read from the input.")
        else:
            console.print("The input holds no records.")


@click.command()
@click.option("--agent", help="Only this agent's sessions.")
@json_option
@pass_app
def stats(app: AppContext, agent: str | None, as_json: bool) -> None:
    """Totals over the stored sessions: outcomes, tokens, cost and the tools used."""
    with app.store().connect() as conn:
        data = session_stats(conn, agent=agent)
    if as_json:
        print_json(data)
    else:
        render_stats(data)


def render_stats(data: dict[str, Any]) -> None:
    rate = data["success_rate"]
    known = (
        f"{rate:.1%} of {data['with_outcome']} with a known outcome" if rate is not None else "—"
    )
    cost = data["cost_usd"]
    span = f"{fmt_time(data['first_started_at'])} → {fmt_time(data['last_started_at'])}"
    summary = Table.grid(padding=(0, 2))
    for label, value in (
        ("sessions", data["sessions"]),
        ("agents", data["agents"]),
        ("messages", data["messages"]),
        ("tool calls", f"{data['tool_calls']} ({data['tool_errors']} marked as errors)"),
        ("success", known),
        ("tokens", data["total_tokens"] or "—"),
        ("cost (USD)", f"{cost:.4f}" if cost is not None else "—"),
        ("time span", span),
        ("raw spans", data["spans"]),
        ("rejected records", data["rejects"]),
    ):
        summary.add_row(f"[bold]{label}[/]", str(value))
    console.print(summary)
    if data["tools"]:
        table = Table(title="Most used tools", title_justify="left")
        for col in ("tool", "calls", "errors", "sessions"):
            table.add_column(col, justify="left" if col == "tool" else "right")
        for t in data["tools"]:
            table.add_row(t["name"], str(t["calls"]), str(t["errors"]), str(t["sessions"]))
        console.print(table)
