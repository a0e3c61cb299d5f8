"""Reading and changing artifacts: versions are immutable, labels move, every move is
logged and audited, and a deploy that fails a guardrail changes nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, desc, func, insert, select, update

from tighten.audit import record as audit
from tighten.errors import InputError
from tighten.registry.guardrails import Limits, check
from tighten.registry.model import KINDS, Artifact, DeployResult, Version
from tighten.store import Store
from tighten.store.schema import artifact_versions, artifacts, label_moves, labels
from tighten.traces.write import ensure_agents

__all__ = [
    "add_version",
    "deploy",
    "ensure_artifact",
    "find_artifact",
    "get_version",
    "history",
    "label_versions",
    "list_artifacts",
    "rollback",
]


def _artifact(row: Any) -> Artifact:
    return Artifact(
        artifact_id=row["artifact_id"],
        agent=row["agent"],
        name=row["name"],
        kind=row["kind"],
        human_only=bool(row["human_only"]),
        required_placeholders=tuple(row["required_placeholders"] or ()),
        json_schema=row["json_schema"],
        created_at=row["created_at"],
    )


def _version(row: Any) -> Version:
    return Version(**{k: row[k] for k in Version.__dataclass_fields__})


def find_artifact(conn: Connection, agent: str, name: str) -> Artifact:
    row = conn.execute(
        select(artifacts).where(artifacts.c.agent == agent, artifacts.c.name == name)
    ).mappings().first()  # fmt: skip
    if row is None:
        raise InputError(
            f"No artifact {name!r} for agent {agent!r}. List them with `tighten artifacts list`."
        )
    return _artifact(row)


def ensure_artifact(
    conn: Connection,
    agent: str,
    name: str,
    kind: str,
    *,
    required_placeholders: Sequence[str] = (),
    human_only: bool = False,
    json_schema: dict[str, Any] | None = None,
    now: datetime,
) -> Artifact:
    """The artifact, created if new (its settings are updated when given again)."""
    if kind not in KINDS:
        raise InputError(f"Unknown artifact kind {kind!r}: use one of {', '.join(KINDS)}.")
    ensure_agents(conn, {agent}, now)
    settings = {
        "kind": kind,
        "required_placeholders": list(required_placeholders),
        "human_only": human_only,
        "json_schema": json_schema,
    }
    found = conn.execute(
        select(artifacts.c.artifact_id).where(artifacts.c.agent == agent, artifacts.c.name == name)
    ).scalar()  # fmt: skip
    if found is None:
        conn.execute(insert(artifacts).values(agent=agent, name=name, created_at=now, **settings))
    else:
        conn.execute(update(artifacts).where(artifacts.c.artifact_id == found).values(**settings))
    return find_artifact(conn, agent, name)


def add_version(
    conn: Connection,
    artifact: Artifact,
    content: str,
    *,
    author: str,
    reason: str | None,
    now: datetime,
) -> tuple[Version, bool]:
    """A new immutable version with ``content`` (its parent: the newest one), or the
    existing version with the same content. Returns (version, created)."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    same = conn.execute(
        select(artifact_versions).where(
            artifact_versions.c.artifact_id == artifact.artifact_id,
            artifact_versions.c.content_hash == digest,
        ).order_by(desc(artifact_versions.c.number))
    ).mappings().first()  # fmt: skip
    if same is not None:
        return _version(same), False
    latest = _latest(conn, artifact.artifact_id)
    number = (latest.number if latest else 0) + 1
    values = {
        "artifact_id": artifact.artifact_id,
        "number": number,
        "content": content,
        "content_hash": digest,
        "parent_version_id": latest.version_id if latest else None,
        "author": author,
        "reason": reason,
        "created_at": now,
    }
    conn.execute(insert(artifact_versions).values(**values))
    audit(conn, actor=author, action="version.create", entity_type="artifact",
          entity_id=f"{artifact.agent}/{artifact.name}", after={"version": number},
          reason=reason, now=now)  # fmt: skip
    version = get_version(conn, artifact, number=number)
    assert version is not None
    return version, True


def _latest(conn: Connection, artifact_id: int) -> Version | None:
    row = conn.execute(
        select(artifact_versions)
        .where(artifact_versions.c.artifact_id == artifact_id)
        .order_by(desc(artifact_versions.c.number))
        .limit(1)
    ).mappings().first()  # fmt: skip
    return _version(row) if row else None


def get_version(
    conn: Connection, artifact: Artifact, *, number: int | None = None, label: str | None = None
) -> Version | None:
    """A version by number, by label, or (neither) the newest."""
    if label is not None:
        number = label_versions(conn, artifact).get(label)
        if number is None:
            return None
    if number is None:
        return _latest(conn, artifact.artifact_id)
    row = conn.execute(
        select(artifact_versions).where(
            artifact_versions.c.artifact_id == artifact.artifact_id,
            artifact_versions.c.number == number,
        )
    ).mappings().first()  # fmt: skip
    return _version(row) if row else None


def label_versions(conn: Connection, artifact: Artifact) -> dict[str, int]:
    """Each label of the artifact → the version number it points at."""
    query = (
        select(labels.c.label, artifact_versions.c.number)
        .join(artifact_versions, artifact_versions.c.version_id == labels.c.version_id)
        .where(labels.c.artifact_id == artifact.artifact_id)
    )
    return {str(label): int(number) for label, number in conn.execute(query).all()}


def list_artifacts(conn: Connection, agent: str | None = None) -> list[dict[str, Any]]:
    """Artifacts with their newest version number and labels."""
    newest = (
        select(artifact_versions.c.artifact_id, func.max(artifact_versions.c.number).label("n"))
        .group_by(artifact_versions.c.artifact_id)
        .subquery()
    )
    query = select(artifacts, newest.c.n).outerjoin(
        newest, newest.c.artifact_id == artifacts.c.artifact_id
    )
    if agent is not None:
        query = query.where(artifacts.c.agent == agent)
    rows = []
    for row in conn.execute(query.order_by(artifacts.c.agent, artifacts.c.name)).mappings():
        artifact = _artifact(row)
        rows.append({
            "agent": artifact.agent, "name": artifact.name, "kind": artifact.kind,
            "human_only": artifact.human_only, "latest_version": row["n"],
            "labels": label_versions(conn, artifact),
        })  # fmt: skip
    return rows


def history(conn: Connection, artifact: Artifact) -> dict[str, Any]:
    """Every version (newest first) and every label move (newest first)."""
    versions = conn.execute(
        select(artifact_versions).where(artifact_versions.c.artifact_id == artifact.artifact_id)
        .order_by(desc(artifact_versions.c.number))
    ).mappings().all()  # fmt: skip
    by_id = {v["version_id"]: v["number"] for v in versions}
    moves = conn.execute(
        select(label_moves).where(label_moves.c.artifact_id == artifact.artifact_id)
        .order_by(desc(label_moves.c.move_id))
    ).mappings().all()  # fmt: skip
    return {
        "versions": [
            {"version": v["number"], "author": v["author"], "reason": v["reason"],
             "created_at": v["created_at"], "content_hash": v["content_hash"],
             "chars": len(v["content"])}
            for v in versions
        ],
        "moves": [
            {"label": m["label"], "from_version": by_id.get(m["from_version_id"]),
             "to_version": by_id[m["to_version_id"]], "actor": m["actor"], "reason": m["reason"],
             "moved_at": m["moved_at"]}
            for m in moves
        ],
    }  # fmt: skip


def _move(
    conn: Connection,
    artifact: Artifact,
    label: str,
    target: Version,
    actor: str,
    reason: str | None,
    now: datetime,
    kind: str = "deploy",
) -> int | None:
    """Point ``label`` at ``target``; log the move; return the previous version number."""
    current = conn.execute(
        select(labels.c.version_id).where(
            labels.c.artifact_id == artifact.artifact_id, labels.c.label == label
        ).with_for_update()
    ).scalar()  # fmt: skip
    if current is None:
        conn.execute(
            insert(labels).values(
                artifact_id=artifact.artifact_id,
                label=label,
                version_id=target.version_id,
                updated_at=now,
            )
        )
    else:
        conn.execute(
            update(labels)
            .where(labels.c.artifact_id == artifact.artifact_id, labels.c.label == label)
            .values(version_id=target.version_id, updated_at=now)
        )
    conn.execute(insert(label_moves).values(
        artifact_id=artifact.artifact_id, label=label, from_version_id=current,
        to_version_id=target.version_id, actor=actor, reason=reason, moved_at=now, kind=kind,
    ))  # fmt: skip
    previous = None
    if current is not None:
        previous = conn.execute(
            select(artifact_versions.c.number).where(artifact_versions.c.version_id == current)
        ).scalar()  # fmt: skip
    audit(conn, actor=actor, action=f"label.{kind}", entity_type="artifact",
          entity_id=f"{artifact.agent}/{artifact.name}",
          before={"label": label, "version": previous},
          after={"label": label, "version": target.number}, reason=reason, now=now)  # fmt: skip
    return previous


def deploy(
    store: Store,
    agent: str,
    name: str,
    number: int,
    *,
    label: str = "production",
    actor: str,
    reason: str | None = None,
    actor_is_human: bool = True,
    limits: Limits | None = None,
    now: datetime | None = None,
) -> DeployResult:
    """Move ``label`` to version ``number`` after the guardrails pass. A failed check
    leaves everything as it was and is returned (and audited) with its reasons."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        artifact = find_artifact(conn, agent, name)
        target = get_version(conn, artifact, number=number)
        if target is None:
            raise InputError(
                f"{name!r} has no version {number}. See `tighten artifacts history {name}`."
            )
        current = label_versions(conn, artifact).get(label)
        if current == number:
            return DeployResult(name, label, True, current, number)  # already there: no move
        failures = check(artifact, target.content, actor_is_human=actor_is_human, limits=limits)
        if not failures:
            previous = _move(conn, artifact, label, target, actor, reason, now)
            return DeployResult(name, label, True, previous, target.number)
    with store.begin() as conn:
        audit(conn, actor=actor, action="deploy.refused", entity_type="artifact",
              entity_id=f"{agent}/{name}", after={"version": number, "failures": failures},
              reason=reason, now=now)  # fmt: skip
    return DeployResult(name, label, False, current, number, tuple(failures))


def rollback(
    store: Store,
    agent: str,
    name: str,
    *,
    label: str = "production",
    to: int | None = None,
    actor: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> DeployResult:
    """Move ``label`` back one step (to where its last move came from), or to version
    ``to``. Rolling back needs no guardrail: the target was deployed before, or is
    named by a person."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        artifact = find_artifact(conn, agent, name)
        if to is None:
            target = _step_back(conn, artifact, label)
        else:
            found = get_version(conn, artifact, number=to)
            if found is None:
                raise InputError(f"{name!r} has no version {to}.")
            target = found
        if label_versions(conn, artifact).get(label) == target.number:
            return DeployResult(name, label, True, target.number, target.number)
        previous = _move(conn, artifact, label, target, actor, reason, now, kind="rollback")
    return DeployResult(name, label, True, previous, target.number)


def _step_back(conn: Connection, artifact: Artifact, label: str) -> Version:
    """The version the label pointed at before its current version was deployed: walk
    the label's deploys newest first, skipping rollbacks, to the deploy that brought the
    current version in. Rolling back twice goes back two deploys."""
    moves = conn.execute(
        select(label_moves.c.from_version_id, label_moves.c.to_version_id, label_moves.c.kind)
        .where(label_moves.c.artifact_id == artifact.artifact_id, label_moves.c.label == label)
        .order_by(desc(label_moves.c.move_id))
    ).all()  # fmt: skip
    if not moves:
        raise InputError(f"{artifact.name!r} has never been deployed to {label}.")
    current = moves[0][1]
    for from_id, to_id, kind in moves:
        if kind != "rollback" and to_id == current and from_id != to_id:
            if from_id is None:
                break
            row = conn.execute(
                select(artifact_versions).where(artifact_versions.c.version_id == from_id)
            ).mappings().one()  # fmt: skip
            return _version(row)
    raise InputError(f"{artifact.name!r} has no earlier {label} version to roll back to.")
