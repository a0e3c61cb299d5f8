"""Artifacts, versions and label moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = ["KINDS", "STRUCTURED", "Artifact", "ArtifactKind", "DeployResult", "Version"]

ArtifactKind = Literal["prompt", "playbook", "soul", "config", "tool", "code"]
KINDS: tuple[str, ...] = ("prompt", "playbook", "soul", "config", "tool", "code")
STRUCTURED = frozenset({"soul", "config", "tool"})  # JSON (or YAML) content


@dataclass(frozen=True, slots=True)
class Artifact:
    artifact_id: int
    agent: str
    name: str
    kind: str
    human_only: bool
    required_placeholders: tuple[str, ...]
    json_schema: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Version:
    version_id: int
    artifact_id: int
    number: int
    content: str
    content_hash: str
    parent_version_id: int | None
    author: str
    reason: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeployResult:
    """The outcome of moving one label: ``ok`` with the versions, or the failed checks."""

    artifact: str
    label: str
    ok: bool
    from_number: int | None = None
    to_number: int | None = None
    failures: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "label": self.label,
            "ok": self.ok,
            "from_version": self.from_number,
            "to_version": self.to_number,
            "failures": list(self.failures),
        }
