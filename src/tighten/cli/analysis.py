"""``tighten calibrate``, ``tighten postmortem`` and ``tighten eval detect``."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, print_json
from tighten.errors import InputError
from tighten.signals.calibrate import calibrate as run_calibrate
from tighten.signals.evaluate import evaluate_detection
from tighten.signals.load import load_sessions, load_signals
from tighten.signals.postmortem import postmortem as run_postmortem

__all__ = ["calibrate", "eval_group", "postmortem"]


@click.command()
@click.option("--agent", help="Fit for this agent only (default: one fit for all agents).")
@json_option
@pass_app
def calibrate(app: AppContext, agent: str | None, as_json: bool) -> None:
    """Refit the friction score on analysed sessions whose outcome is known, activate the
    fit and rescore. Quality figures are cross-validated."""
    report = run_calibrate(app.store(), agent=agent)
    if as_json:
        print_json(report.as_dict())
        return
    console.print(
        f"Calibration {report.calibration_id} on {report.sessions} sessions "
        f"({report.failures} failed): AUROC {report.auroc:.3f} cross-validated "
        f"(default weights: {report.default_auroc:.3f}), average precision "
        f"{report.average_precision:.3f}. Rescored {report.rescored} sessions."
    )
    strongest = sorted(report.weights.items(), key=lambda kv: -abs(kv[1]))[:8]
    console.print("Strongest features: " + ", ".join(f"{k} {v:+.2f}" for k, v in strongest))


@click.command()
@click.argument("session_id")
@json_option
@pass_app
def postmortem(app: AppContext, session_id: str, as_json: bool) -> None:
    """The timeline of SESSION_ID, the most likely decisive step and who took it, with
    ranked alternatives and their evidence."""
    with app.store().connect() as conn:
        loaded = load_sessions(conn, [session_id])
        if not loaded:
            raise InputError(f"No session {session_id!r}. List them with `tighten sessions list`.")
        found = load_signals(conn, [session_id])[session_id]
    result = run_postmortem(loaded[0], found)
    if as_json:
        print_json(result.as_dict())
        return
    if not found:
        console.print("[dim]No signals stored for this session: run `tighten detect` first.[/]")
    for item in result.timeline:
        mark = " [red]◀ " + escape(", ".join(item["signals"])) + "[/]" if item["signals"] else ""
        decisive = result.decisive is not None and item["index"] == result.decisive.step
        prefix = "[bold red]▶[/]" if decisive else " "
        console.print(
            f"{prefix} [{item['index']}] {escape(item['speaker'])}: {escape(item['summary'])}{mark}"
        )
    if result.decisive is not None:
        console.rule()
        d = result.decisive
        console.print(f"[bold]Decisive step:[/] {d.step} ({escape(d.agent)}), score {d.score:.2f}")
        for reason in d.reasons:
            console.print(f"  - {escape(reason)}")
        for alt in result.alternatives:
            console.print(
                f"Alternative: step {alt.step} ({escape(alt.agent)}), score {alt.score:.2f}"
            )


@click.group("eval")
def eval_group() -> None:
    """Measure the loop's parts on labelled data."""


@eval_group.command("detect")
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option("--no-calibration", is_flag=True, help="Skip the cross-fitted calibrated score.")
@json_option
def eval_detect(paths: tuple[str, ...], no_calibration: bool, as_json: bool) -> None:
    """Ingest labelled sessions into a temporary store with their outcome removed, run
    detection, and report how well the friction score ranks the failed ones."""
    result = evaluate_detection(paths, cross_validated=not no_calibration)
    if as_json:
        print_json(result)
        return
    _render_eval(result)


def _render_eval(result: dict[str, Any]) -> None:
    console.print(
        f"{result['sessions']} sessions, {result['failures']} failed "
        f"(base rate {result['base_failure_rate']:.1%})."
    )
    table = Table(title="Ranking failed sessions", title_justify="left")
    for col in ("score", "AUROC", "avg precision", "precision top 20%", "lift"):
        table.add_column(col, justify="left" if col == "score" else "right")
    rows = [("friction score", result["friction_score"])]
    if "calibrated_cross_fitted" in result:
        rows.append(("calibrated (cross-fitted)", result["calibrated_cross_fitted"]))
    rows += [(f"baseline: {k}", v) for k, v in result["baselines"].items()]
    for name, f in rows:
        table.add_row(
            name, f"{f['auroc']:.3f}", f"{f['average_precision']:.3f}",
            f"{f['precision_top20']:.1%}", f"{f['lift_top20']:.2f}x",
        )  # fmt: skip
    console.print(table)
    detectors = Table(title="Signal firing rate", title_justify="left")
    for col in ("signal", "in failed", "in successful"):
        detectors.add_column(col, justify="left" if col == "signal" else "right")
    for name, f in result["detectors"].items():
        detectors.add_row(name, f"{f['failed_rate']:.1%}", f"{f['success_rate']:.1%}")
    console.print(detectors)
    if "postmortem" in result:
        pm = result["postmortem"]
        console.print(f"Post-mortem: {pm}")
