"""``tighten detect`` and ``tighten signals list``."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, print_json
from tighten.config import Settings
from tighten.errors import ConfigError
from tighten.llm import resolve_provider
from tighten.signals.detect import DetectReport, Judge
from tighten.signals.detect import detect as run_detect
from tighten.signals.judge import JudgeBudget
from tighten.traces.query import list_sessions, list_signals, parse_since

__all__ = ["detect", "group", "render_detect"]


@click.command()
@click.option("--agent", help="Only this agent's sessions.")
@click.option("--since", help="Only sessions started after: 7d, 24h, or an ISO date.")
@click.option("--full", is_flag=True, help="Re-analyse every session, not only new or changed.")
@click.option("--limit", type=click.IntRange(min=1), help="Analyse at most this many sessions.")
@click.option(
    "--judge",
    "use_judge",
    is_flag=True,
    help="Also let an LLM read the flagged sessions plus a sample (needs TIGHTEN_LLM_MODEL "
    "or --judge-model), under the judge_* budget settings.",
)
@click.option("--judge-model", help="The judge's model, e.g. openai:gpt-4.1-mini or ollama:qwen3.")
@json_option
@pass_app
def detect(
    app: AppContext,
    agent: str | None,
    since: str | None,
    full: bool,
    limit: int | None,
    use_judge: bool,
    judge_model: str | None,
    as_json: bool,
) -> None:
    """Find friction and delight in sessions not analysed yet (or changed since), store
    their signals, metrics and friction score. Rules only and offline unless --judge."""
    store = app.store()
    judge = _judge(app.settings(), judge_model) if use_judge or judge_model else None
    report = run_detect(
        store, agent=agent, since=parse_since(since), full=full, limit=limit, judge=judge
    )
    if as_json:
        print_json(report.as_dict())
        return
    render_detect(report)
    with store.connect() as conn:
        worst = list_sessions(conn, agent=agent, order="friction", limit=5)
    _render_worst(worst)


def _judge(settings: Settings, model: str | None) -> Judge:
    spec = model or settings.llm_model
    if not spec:
        raise ConfigError(
            "The judge needs a model: set TIGHTEN_LLM_MODEL (e.g. openai:gpt-4.1-mini) "
            "or pass --judge-model."
        )
    budget = JudgeBudget(
        max_sessions=settings.judge_max_sessions,
        max_tokens_per_session=settings.judge_max_tokens_per_session,
        max_cost_usd=settings.judge_max_cost_usd,
    )
    provider = resolve_provider(spec, settings)
    return Judge(provider, spec, budget, settings.judge_sample_rate)


def render_detect(report: DetectReport) -> None:
    console.print(
        f"Analysed {report.sessions} sessions in {report.seconds:.2f} s: "
        f"{report.signals} signals, {report.window_signals} across sessions."
    )
    if report.judged or report.judge_errors:
        console.print(
            f"The judge read {report.judged} sessions ({report.judge_errors} failed): "
            f"{report.judge_signals} signals, {report.judge_tokens} tokens, "
            f"${report.judge_cost_usd:.4f}."
        )
    if report.by_type:
        table = Table(title="Signals by type", title_justify="left")
        table.add_column("type")
        table.add_column("count", justify="right")
        for name, count in sorted(report.by_type.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(name, str(count))
        console.print(table)


def _render_worst(rows: list[dict[str, Any]]) -> None:
    rows = [r for r in rows if r["friction_score"] is not None]
    if not rows:
        return
    table = Table(title="Highest friction", title_justify="left")
    table.add_column("session", no_wrap=True)
    table.add_column("friction", justify="right")
    table.add_column("signals")
    for r in rows:
        table.add_row(
            escape(r["session_id"]),
            f"{r['friction_score']:.2f}",
            escape(", ".join(r["signal_types"] or [])),
        )
    console.print(table)


@click.group("signals")
def group() -> None:
    """Read the signals that `tighten detect` stored."""


@group.command("list")
@click.option("--type", "type_", help="Only this signal type (e.g. tool_failure).")
@click.option("--agent", help="Only this agent.")
@click.option("--session", "session_id", help="Only this session.")
@click.option(
    "--scope",
    type=click.Choice(["session", "window"]),
    help="session: about one session; window: about an agent across sessions.",
)
@click.option(
    "--polarity", type=click.Choice(["friction", "delight"]), help="Only friction or delight."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=100, show_default=True, help="At most this many."
)
@json_option
@pass_app
def list_(
    app: AppContext,
    type_: str | None,
    agent: str | None,
    session_id: str | None,
    scope: str | None,
    polarity: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Signals, most severe first."""
    with app.store().connect() as conn:
        rows = list_signals(
            conn,
            type_=type_,
            agent=agent,
            session_id=session_id,
            scope=scope,
            polarity=polarity,
            limit=limit,
        )
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No signals match. Run `tighten detect` first.")
        return
    table = Table()
    for col in ("type", "severity", "session", "evidence", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        where = r["session_id"] or f"{len(r['sessions'] or [])} sessions"
        table.add_row(
            escape(r["type"]),
            f"{r['severity']:.2f}",
            escape(where),
            ",".join(map(str, r["evidence"] or [])),
            escape(r["description"]),
        )
    console.print(table)
