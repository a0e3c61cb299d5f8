"""tighten: a self-improvement loop for LLM agents.

The public Python API. Everything else is internal and may change between releases.

    >>> import tighten
    >>> store = tighten.open_store()                      # $TIGHTEN_HOME/tighten.db
    >>> report = tighten.ingest(store, ["traces.jsonl"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tighten.config import Settings
from tighten.errors import ConfigError, InputError, StoreError, TightenError
from tighten.hookspecs import hookimpl
from tighten.store import Store, open_store
from tighten.traces.ingest import IngestReport
from tighten.traces.model import Session, ToolCall

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "IngestReport",
    "InputError",
    "Session",
    "Settings",
    "Store",
    "StoreError",
    "TightenError",
    "ToolCall",
    "__version__",
    "hookimpl",
    "ingest",
    "ingest_sessions",
    "open_store",
]


def ingest(
    store: Store,
    paths: Iterable[str | Path],
    *,
    agent: str | None = None,
    settings: Settings | None = None,
) -> IngestReport:
    """Ingest trace files (JSONL sessions, OTLP JSON or protobuf; plain or gzip) into
    ``store``. Idempotent; bad records are quarantined in ``rejects``."""
    from tighten.traces.ingest import ingest_paths

    return ingest_paths(store, paths, settings=settings or Settings.load(), agent=agent)


def ingest_sessions(
    store: Store,
    sessions: Iterable[dict[str, Any]],
    *,
    agent: str | None = None,
    source: str = "python",
    settings: Settings | None = None,
) -> IngestReport:
    """Ingest session dicts (the JSONL session format) from code."""
    from tighten.traces.ingest import ingest_sessions as _ingest_sessions

    return _ingest_sessions(
        store, sessions, settings=settings or Settings.load(), source=source, agent=agent
    )
