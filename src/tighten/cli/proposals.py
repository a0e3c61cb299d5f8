"""``tighten proposals add`` and ``tighten proposals list``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, print_json
from tighten.errors import InputError
from tighten.proposals import Cycle, Proposal, describe_impact
from tighten.proposals.add import add_cycle, load_cycle, parse_cycle_json

__all__ = ["group"]


@click.group("proposals")
def group() -> None:
    """Add a cycle of proposed changes and list a cycle's proposals."""


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"No such file: {path}. Check the path.") from None
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.") from None


@group.command("add")
@click.argument("file", metavar="FILE")
@click.option("--agent", help="The agent the proposals are for (overrides the file's).")
@json_option
@pass_app
def add(app: AppContext, file: str, agent: str | None, as_json: bool) -> None:
    """Add a cycle from FILE (JSON, or - for standard input): a list of proposals, or
    {"agent", "window_start", "window_end", "stats", "proposals": [...]}. Each proposal
    needs kind, goal (accuracy, capabilities, cost) and deployability (auto, semi,
    manual). The cycle opens with its proposals numbered in digest order; nothing is
    written if any proposal is invalid."""
    spec = parse_cycle_json(_read(file), agent=agent, source=file)
    store = app.store()
    cycle_id = add_cycle(
        store,
        spec.agent,
        spec.proposals,
        window_start=spec.window_start,
        window_end=spec.window_end,
        stats=spec.stats,
    )
    with store.connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
    if as_json:
        print_json(_as_dict(cycle, items))
        return
    console.print(
        f"Cycle {cycle_id} for {escape(cycle.agent)}: {len(items)} proposals. "
        f"Read the digest with `tighten review digest --cycle {cycle_id}`."
    )


@group.command("list")
@click.option("--cycle", "cycle_id", type=int, help="A cycle id (default: the latest open cycle).")
@json_option
@pass_app
def list_(app: AppContext, cycle_id: int | None, as_json: bool) -> None:
    """The proposals of a cycle, by number: goal, kind, target, expected impact, who
    deploys it and its status."""
    with app.store().connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
    if as_json:
        print_json(_as_dict(cycle, items))
        return
    window = f" · {cycle.window_text}" if cycle.window_text else ""
    table = Table(
        title=f"Cycle {cycle.cycle_id} · {escape(cycle.agent)} · {cycle.status}{window}",
        title_justify="left",
    )
    for name in ("#", "goal", "change", "expected impact", "deploy", "status"):
        table.add_column(name, overflow="fold", justify="right" if name == "#" else "left")
    for p in items:
        table.add_row(
            str(p.number),
            p.goal or "—",
            escape(p.headline),
            escape(describe_impact(p.expected_impact) or "—"),
            p.deployability,
            p.status,
        )
    console.print(table if items else f"Cycle {cycle.cycle_id} has no proposals.")


def _as_dict(cycle: Cycle, items: list[Proposal]) -> dict[str, object]:
    return {"cycle": cycle.as_dict(), "proposals": [p.as_dict() for p in items]}
