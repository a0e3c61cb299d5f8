"""The built-in registry: artifacts in tighten's own database (see
:mod:`tighten.registry.artifacts` for the operations and their guarantees)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from tighten.errors import InputError
from tighten.registry.artifacts import (
    add_version,
    find_artifact,
    get_version,
    history,
)
from tighten.registry.artifacts import deploy as deploy_version
from tighten.registry.base import Fetched, RegistryVersion
from tighten.store import Store

__all__ = ["DatabaseRegistry"]


class DatabaseRegistry:
    """Artifacts, versions and labels in the store (SQLite or PostgreSQL)."""

    name: ClassVar[str] = "db"

    def __init__(self, store: Store) -> None:
        self.store = store

    def fetch(self, agent: str, artifact: str, label: str = "production") -> Fetched:
        with self.store.connect() as conn:
            found = find_artifact(conn, agent, artifact)
            version = get_version(conn, found, label=label)
        if version is None:
            raise InputError(f"{artifact!r} has no version labelled {label!r}.")
        return Fetched(artifact, label, str(version.number), version.content)

    def publish(
        self, agent: str, artifact: str, content: str, *, author: str, reason: str | None
    ) -> str:
        with self.store.begin() as conn:
            found = find_artifact(conn, agent, artifact)
            version, _ = add_version(
                conn, found, content, author=author, reason=reason, now=datetime.now(UTC)
            )
        return str(version.number)

    def move_label(
        self, agent: str, artifact: str, version: str, label: str, *, actor: str, reason: str | None
    ) -> None:
        result = deploy_version(
            self.store, agent, artifact, int(version), label=label, actor=actor, reason=reason
        )
        if not result.ok:
            raise InputError(f"{artifact} v{version} was refused: {'; '.join(result.failures)}")

    def versions(self, agent: str, artifact: str) -> list[RegistryVersion]:
        with self.store.connect() as conn:
            found = history(conn, find_artifact(conn, agent, artifact))
        return [
            RegistryVersion(str(v["version"]), v["author"], v["reason"], v["created_at"])
            for v in found["versions"]
        ]
