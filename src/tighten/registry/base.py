"""The registry interface: where an agent's artifacts live.

The built-in database registry (:mod:`tighten.registry.backends.db`) is the default; a git
repository of artifact files (the GitOps path) and external prompt services (Langfuse,
PromptLayer) implement the same protocol, and a plugin can add its own through the
``register_registries`` hook. Guardrails run in tighten before ``move_label`` is called,
whatever the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from tighten.config import Settings
    from tighten.store import Store

__all__ = ["Fetched", "Registry", "RegistryFactory", "RegistryVersion"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What an agent runs: the content a label points at, and which version that is."""

    name: str
    label: str
    version: str
    content: str


@dataclass(frozen=True, slots=True)
class RegistryVersion:
    """One version as a backend knows it: a number (database, Langfuse, PromptLayer) or
    a commit id (git), with its author, reason and time where the backend keeps them."""

    version: str
    author: str | None
    reason: str | None
    created_at: datetime | None


class Registry(Protocol):
    """A place artifacts live.

    ``fetch`` returns what a label points at (raising :class:`tighten.errors.InputError`
    when the artifact or label does not exist, :class:`tighten.errors.StoreError` when
    the backend cannot be reached). ``publish`` stores new content as a new version
    without moving any label and returns that version. ``move_label`` points a label at
    a version (a deploy or a rollback) and must leave the backend unchanged if it
    fails. ``versions`` lists the versions, newest first."""

    name: ClassVar[str]

    def fetch(self, agent: str, artifact: str, label: str = "production") -> Fetched: ...

    def publish(
        self, agent: str, artifact: str, content: str, *, author: str, reason: str | None
    ) -> str: ...

    def move_label(
        self, agent: str, artifact: str, version: str, label: str, *, actor: str, reason: str | None
    ) -> None: ...

    def versions(self, agent: str, artifact: str) -> list[RegistryVersion]: ...


RegistryFactory = Callable[[str, "Settings", "Store"], Registry]
