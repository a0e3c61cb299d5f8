"""``tighten sessions list`` and ``tighten sessions show``."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, fmt_time, print_json
from tighten.errors import InputError
from tighten.traces.query import get_session, list_sessions, parse_since

__all__ = ["group"]


@click.group("sessions")
def group() -> None:
    """List and read stored sessions."""


TRUNCATE = 1200


def _outcome(row: dict[str, Any]) -> str:
    if row["outcome_success"] is None:
        return "—" if row.get("outcome_reward") is None else f"reward {row['outcome_reward']:g}"
    return "[green]success[/]" if row["outcome_success"] else "[red]failure[/]"


@group.command("list")
@click.option("--agent", help="Only this agent.")
@click.option("--since", help="Start of the window: 7d, 24h, or an ISO date.")
@click.option("--until", help="End of the window (exclusive), same forms.")
@click.option(
    "--outcome",
    type=click.Choice(["success", "failure", "unknown"]),
    help="Only sessions with this outcome (unknown: no outcome recorded).",
)
@click.option(
    "--sort",
    "order",
    type=click.Choice(["recent", "friction"]),
    default="recent",
    show_default=True,
    help="Newest first, or highest friction score first.",
)
@click.option("--min-friction", type=click.FloatRange(0, 1), help="Only scores at least this.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many."
)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many (paging).")
@json_option
@pass_app
def list_(
    app: AppContext,
    agent: str | None,
    since: str | None,
    until: str | None,
    outcome: str | None,
    order: str,
    min_friction: float | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Sessions, newest first (or by friction), with their friction score once analysed."""
    with app.store().connect() as conn:
        rows = list_sessions(
            conn,
            agent=agent,
            since=parse_since(since),
            until=parse_since(until),
            outcome=outcome,
            order=order,
            min_friction=min_friction,
            limit=limit,
            offset=offset,
        )
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No sessions match. Ingest some with `tighten ingest FILE`.")
        return
    agents = {r["agent"] for r in rows}
    table = Table(caption=f"agent: {escape(rows[0]['agent'])}" if len(agents) == 1 else None)
    table.add_column("session", overflow="fold", min_width=12)
    if len(agents) > 1:
        table.add_column("agent", max_width=16, no_wrap=True, overflow="ellipsis")
    table.add_column("started", no_wrap=True, min_width=7)
    table.add_column("msgs", justify="right", no_wrap=True)
    table.add_column("tools (err)", justify="right", no_wrap=True)
    table.add_column("friction", justify="right", no_wrap=True)
    table.add_column("outcome", no_wrap=True, min_width=7)
    for r in rows:
        cells = [escape(r["session_id"])]
        if len(agents) > 1:
            cells.append(escape(r["agent"]))
        errors = f" ({r['tool_error_count']})" if r["tool_error_count"] else ""
        cells += [
            r["started_at"].strftime("%m-%d %H:%M") if r["started_at"] else "—",
            str(r["message_count"]),
            f"{r['tool_call_count']}{errors}",
            "—" if r["friction_score"] is None else f"{r['friction_score']:.2f}",
            _outcome(r),
        ]
        table.add_row(*cells)
    console.print(table)


@group.command()
@click.argument("session_id")
@click.option("--full", is_flag=True, help="Do not shorten long messages.")
@json_option
@pass_app
def show(app: AppContext, session_id: str, full: bool, as_json: bool) -> None:
    """A readable transcript of SESSION_ID with tool calls, results and errors."""
    with app.store().connect() as conn:
        session = get_session(conn, session_id)
    if session is None:
        raise InputError(f"No session {session_id!r}. List them with `tighten sessions list`.")
    if as_json:
        print_json(session)
        return
    _header(session)
    marks: dict[int, list[str]] = {}
    for sig in session["signals"]:
        for index in sig["evidence"] or ():
            marks.setdefault(index, []).append(sig["type"])
    for index, msg in enumerate(session["messages"]):
        _message(index, msg, full, marks.get(index, []))
    _signals_footer(session)


def _header(s: dict[str, Any]) -> None:
    console.print(f"[bold]Session {escape(s['session_id'])}[/]")
    facts = [
        f"agent {escape(s['agent'])}",
        f"origin {s['origin']}",
        f"model {escape(s['model'] or '—')}",
        f"started {fmt_time(s['started_at'])}",
        f"{s['message_count']} messages",
        f"{s['tool_call_count']} tool calls ({s['tool_error_count']} errors)",
    ]
    if s["total_tokens"]:
        facts.append(f"{s['total_tokens']} tokens")
    if s["cost_usd"] is not None:
        facts.append(f"${s['cost_usd']:.4f}")
    console.print(" · ".join(facts))
    console.print(f"outcome: {_outcome(s)}")
    if s["artifact_versions"]:
        versions = ", ".join(f"{k}={v}" for k, v in s["artifact_versions"].items())
        console.print(f"versions: {escape(versions)}")
    console.rule()


STYLE = {"system": "magenta", "user": "cyan", "assistant": "green", "tool": "yellow"}


def _signals_footer(s: dict[str, Any]) -> None:
    if s["metrics"] is None:
        console.print("[dim]Not analysed yet: run `tighten detect`.[/]")
        return
    console.rule()
    console.print(f"friction score: {s['metrics']['friction_score']:.2f}")
    for sig in s["signals"]:
        color = "red" if sig["polarity"] == "friction" else "green"
        console.print(
            f"[{color}]{escape(sig['type'])}[/] ({sig['severity']:.2f}) "
            f"{escape(sig['description'])}"
        )


def _message(index: int, msg: dict[str, Any], full: bool, marks: list[str]) -> None:
    role = msg["role"]
    who = f"{role} ({msg['name']})" if msg.get("name") else role
    flags = ""
    if role == "tool" and (msg.get("is_error") or msg.get("error")):
        flags = " [red bold]ERROR[/]"
    if msg.get("latency_ms") is not None:
        flags += f" [dim]{msg['latency_ms']:.0f} ms[/]"
    if msg.get("media"):
        flags += f" [dim]media: {escape(', '.join(msg['media']))}[/]"
    if marks:
        flags += " [red]◀ " + escape(", ".join(sorted(set(marks)))) + "[/]"
    console.print(f"[bold {STYLE[role]}][{index}] {escape(who)}[/]{flags}")
    text = msg["content"]
    if msg.get("error") and msg["error"] not in text:
        text = f"{text}\n{msg['error']}".strip()
    if text:
        if not full and len(text) > TRUNCATE:
            hidden = len(text) - TRUNCATE
            text = f"{text[:TRUNCATE]}… ({hidden:,} more characters; --full shows all)"
        console.print(escape(text))
    for call in msg.get("tool_calls", ()):
        args = call["arguments"]
        if not full and len(args) > 400:
            args = args[:400] + "…"
        console.print(f"  [bold]→ {escape(call['name'])}[/]({escape(args)})")
    console.print()
