"""What agents call: ``tighten.get_artifact(agent, name, label="production")``.

Each fetch keeps the text in memory for ``ttl`` seconds and writes the last good copy to
``$TIGHTEN_HOME/cache/artifacts``; when the store cannot be reached, the last good copy
is returned (and said so in the log), so an outage of the loop never takes the agent
down with it. Without a cached copy the error is raised.
"""

from __future__ import annotations

import json
import logging
import time
from hashlib import sha256
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from tighten.config import Settings
from tighten.errors import InputError, StoreError
from tighten.registry.artifacts import find_artifact, get_version
from tighten.store import open_store

__all__ = ["get_artifact"]

log = logging.getLogger("tighten")
_memory: dict[tuple[str, str, str, str], tuple[float, str]] = {}


def _cache_file(settings: Settings, agent: str, name: str, label: str) -> Path:
    key = sha256(f"{settings.resolved_database_url()}\0{agent}\0{name}\0{label}".encode())
    return settings.home / "cache" / "artifacts" / f"{key.hexdigest()[:32]}.json"


def get_artifact(
    agent: str,
    name: str,
    label: str = "production",
    *,
    settings: Settings | None = None,
    ttl: float = 60.0,
) -> str:
    """The content of the version ``label`` points at, for ``agent``'s artifact ``name``."""
    settings = settings or Settings.load()
    key = (settings.resolved_database_url(), agent, name, label)
    cached = _memory.get(key)
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]
    path = _cache_file(settings, agent, name, label)
    try:
        content, number = _fetch(settings, agent, name, label)
    except (StoreError, SQLAlchemyError) as exc:
        if path.is_file():
            log.warning(
                "tighten: store unreachable (%s); serving the last good copy of %s", exc, name
            )
            return str(json.loads(path.read_text())["content"])
        raise
    _memory[key] = (time.monotonic(), content)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"agent": agent, "name": name, "label": label,
                               "version": number, "content": content}))  # fmt: skip
    tmp.replace(path)  # atomic: a reader never sees half a copy
    return content


def _fetch(settings: Settings, agent: str, name: str, label: str) -> tuple[str, int]:
    store = open_store(settings)
    try:
        with store.connect() as conn:
            artifact = find_artifact(conn, agent, name)
            version = get_version(conn, artifact, label=label)
    finally:
        store.close()
    if version is None:
        raise InputError(f"{name!r} has no version labelled {label!r}. Deploy one first.")
    return version.content, version.number
