"""``tighten artifacts``: import, list, show, diff, history, deploy, rollback."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, fmt_time, print_json
from tighten.errors import InputError
from tighten.registry.artifacts import (
    deploy as run_deploy,
)
from tighten.registry.artifacts import (
    find_artifact,
    get_version,
    history,
    label_versions,
    list_artifacts,
)
from tighten.registry.artifacts import (
    rollback as run_rollback,
)
from tighten.registry.diff import structural_diff, unified_diff
from tighten.registry.importer import import_artifacts
from tighten.registry.model import STRUCTURED, DeployResult
from tighten.store import Store
from tighten.store.schema import artifacts as artifacts_table

__all__ = ["group"]

agent_option = click.option(
    "--agent", help="The agent the artifact belongs to (default: the only agent with artifacts)."
)


def _agent(store: Store, agent: str | None) -> str:
    if agent is not None:
        return agent
    with store.connect() as conn:
        agents: list[str] = sorted(set(conn.execute(select(artifacts_table.c.agent)).scalars()))
    if len(agents) == 1:
        return agents[0]
    if not agents:
        raise InputError(
            "No artifacts yet. Import some with `tighten artifacts import PATH --agent NAME`."
        )
    raise InputError(f"Several agents have artifacts ({', '.join(agents)}): pass --agent.")


@click.group("artifacts")
def group() -> None:
    """The agent's versioned prompts, playbooks, souls, configs and tools."""


@group.command("import")
@click.argument("path", type=click.Path(exists=True))
@click.option("--agent", required=True, help="The agent these artifacts belong to.")
@click.option("--author", default="import", show_default=True, help="Recorded as the author.")
@click.option("--reason", help="Why (recorded with the versions).")
@json_option
@pass_app
def import_(
    app: AppContext, path: str, agent: str, author: str, reason: str | None, as_json: bool
) -> None:
    """Import PATH: a folder of .md/.txt/.json/.yaml files (one artifact each), one file,
    or a tighten-artifacts.yaml manifest. New artifacts go to production when they pass
    the guardrails; changed ones get a new version to deploy."""
    report = import_artifacts(app.store(), agent, path, author=author, reason=reason)
    if as_json:
        print_json(report.as_dict())
        return
    console.print(
        f"Imported: {len(report.created)} new, {len(report.new_versions)} with a new version, "
        f"{len(report.unchanged)} unchanged."
    )
    for name, failures in report.refused.items():
        console.print(f"  [red]{escape(name)} not deployed:[/] {escape('; '.join(failures))}")


@group.command("list")
@click.option("--agent", help="Only this agent's artifacts.")
@json_option
@pass_app
def list_(app: AppContext, agent: str | None, as_json: bool) -> None:
    """Artifacts with their newest version and where each label points."""
    with app.store().connect() as conn:
        rows = list_artifacts(conn, agent)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(
            "No artifacts. Import some with `tighten artifacts import PATH --agent NAME`."
        )
        return
    table = Table()
    for col in ("agent", "name", "kind", "latest", "labels"):
        table.add_column(col)
    for r in rows:
        labels = ", ".join(f"{k}=v{v}" for k, v in sorted(r["labels"].items()))
        kind = r["kind"] + (" (human-only)" if r["human_only"] else "")
        table.add_row(
            escape(r["agent"]), escape(r["name"]), kind, f"v{r['latest_version']}", labels
        )
    console.print(table)


@group.command()
@click.argument("name")
@agent_option
@click.option("--version", "number", type=int, help="This version (default: the production one).")
@click.option("--label", help="The version this label points at.")
@json_option
@pass_app
def show(
    app: AppContext,
    name: str,
    agent: str | None,
    number: int | None,
    label: str | None,
    as_json: bool,
) -> None:
    """The content of NAME at a version or label (default: production, else the newest)."""
    store = app.store()
    agent = _agent(store, agent)
    with store.connect() as conn:
        artifact = find_artifact(conn, agent, name)
        if number is None and label is None and "production" in label_versions(conn, artifact):
            label = "production"
        version = get_version(conn, artifact, number=number, label=label)
        labels = label_versions(conn, artifact)
    if version is None:
        raise InputError(f"{name!r} has no such version. See `tighten artifacts history {name}`.")
    if as_json:
        print_json({
            "agent": agent, "name": name, "kind": artifact.kind, "version": version.number,
            "labels": [k for k, v in labels.items() if v == version.number],
            "author": version.author, "reason": version.reason,
            "created_at": version.created_at, "content": version.content,
        })  # fmt: skip
        return
    here = [k for k, v in labels.items() if v == version.number]
    console.print(f"[bold]{escape(name)}[/] v{version.number} {escape(str(here or ''))} "
                  f"by {escape(version.author)}, {fmt_time(version.created_at)}")  # fmt: skip
    click.echo(version.content)


@group.command()
@click.argument("name")
@click.argument("a", type=int)
@click.argument("b", type=int)
@agent_option
@json_option
@pass_app
def diff(app: AppContext, name: str, a: int, b: int, agent: str | None, as_json: bool) -> None:
    """What changed in NAME from version A to version B: a unified diff, and for
    structured artifacts (soul, config, tool) the changed JSON paths."""
    store = app.store()
    agent = _agent(store, agent)
    with store.connect() as conn:
        artifact = find_artifact(conn, agent, name)
        va, vb = get_version(conn, artifact, number=a), get_version(conn, artifact, number=b)
    if va is None or vb is None:
        raise InputError(f"{name!r} has no version {a if va is None else b}.")
    text = unified_diff(va.content, vb.content, name, a, b)
    changes = structural_diff(va.content, vb.content) if artifact.kind in STRUCTURED else None
    if as_json:
        print_json({"name": name, "from": a, "to": b, "diff": text, "changes": changes})
        return
    for change in changes or ():
        line = (
            f"{change['op']} {change['path']}: {change.get('before')!r} → {change.get('after')!r}"
        )
        console.print(line, markup=False)
    click.echo(text or "(no difference)")


@group.command("history")
@click.argument("name")
@agent_option
@json_option
@pass_app
def history_(app: AppContext, name: str, agent: str | None, as_json: bool) -> None:
    """Every version of NAME and every label move, newest first."""
    store = app.store()
    agent = _agent(store, agent)
    with store.connect() as conn:
        found = history(conn, find_artifact(conn, agent, name))
    if as_json:
        print_json(found)
        return
    for v in found["versions"]:
        console.print(f"v{v['version']}  {fmt_time(v['created_at'])}  {escape(v['author'])}: "
                      f"{escape(v['reason'] or '')}")  # fmt: skip
    for m in found["moves"]:
        moved = f"v{m['from_version'] or '—'} → v{m['to_version']}"
        who = f"by {escape(m['actor'])} {escape(m['reason'] or '')}"
        console.print(f"{fmt_time(m['moved_at'])}  {m['label']}: {moved} {who}")


def _render(result: DeployResult) -> None:
    if result.ok:
        moved = f"v{result.from_number or '—'} → v{result.to_number}"
        console.print(f"{escape(result.artifact)}: {result.label} {moved}.")
        return
    console.print(f"[red]{escape(result.artifact)} v{result.to_number} was not deployed:[/]")
    for failure in result.failures:
        console.print(f"  - {escape(failure)}")


@group.command("deploy")
@click.argument("name")
@click.argument("version", type=int)
@agent_option
@click.option("--label", default="production", show_default=True, help="The label to move.")
@click.option("--reason", help="Why (recorded in the label log and the audit).")
@click.option("--actor", default="cli", show_default=True, help="Who deploys (recorded).")
@json_option
@pass_app
def deploy_(app: AppContext, name: str, version: int, agent: str | None, label: str,
            reason: str | None, actor: str, as_json: bool) -> None:  # fmt: skip
    """Point LABEL of NAME at VERSION, after the guardrails pass. Exit 1 when refused."""
    store = app.store()
    result = run_deploy(
        store, _agent(store, agent), name, version, label=label, actor=actor, reason=reason
    )
    print_json(result.as_dict()) if as_json else _render(result)
    if not result.ok:
        raise click.exceptions.Exit(1)


@group.command("rollback")
@click.argument("name")
@agent_option
@click.option("--label", default="production", show_default=True, help="The label to move back.")
@click.option("--to", "to", type=int, help="This version (default: one deploy back).")
@click.option("--reason", help="Why (recorded).")
@click.option("--actor", default="cli", show_default=True, help="Who rolls back (recorded).")
@json_option
@pass_app
def rollback_(app: AppContext, name: str, agent: str | None, label: str, to: int | None,
              reason: str | None, actor: str, as_json: bool) -> None:  # fmt: skip
    """Move LABEL of NAME back one deploy (twice: two deploys), or to version --to."""
    store = app.store()
    result = run_rollback(
        store, _agent(store, agent), name, label=label, to=to, actor=actor, reason=reason
    )
    print_json(result.as_dict()) if as_json else _render(result)
