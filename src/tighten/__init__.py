"""tighten: a self-improvement loop for LLM agents.

The public Python API. Everything else is internal and may change between releases.

    >>> import tighten
    >>> store = tighten.open_store()                      # $TIGHTEN_HOME/tighten.db
    >>> report = tighten.ingest(store, ["traces.jsonl"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from tighten.config import Settings
from tighten.errors import ConfigError, InputError, StoreError, TightenError
from tighten.hookspecs import hookimpl
from tighten.registry.client import get_artifact
from tighten.signals.detect import DetectReport
from tighten.signals.model import (
    Baseline,
    DetectContext,
    Detector,
    SessionData,
    Signal,
    WindowDetector,
    WindowSignal,
)
from tighten.store import Store, open_store
from tighten.traces.ingest import IngestReport
from tighten.traces.model import Session, ToolCall

__version__ = "0.1.0"

__all__ = [
    "Baseline",
    "ConfigError",
    "DetectContext",
    "DetectReport",
    "Detector",
    "IngestReport",
    "InputError",
    "Session",
    "SessionData",
    "Settings",
    "Signal",
    "Store",
    "StoreError",
    "TightenError",
    "ToolCall",
    "WindowDetector",
    "WindowSignal",
    "__version__",
    "detect",
    "get_artifact",
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


def detect(
    store: Store,
    *,
    agent: str | None = None,
    full: bool = False,
    now: datetime | None = None,
) -> DetectReport:
    """Run the registered detectors over the sessions not analysed yet (``full``: all),
    storing their signals, metrics and friction score. Rules only, offline; the LLM judge
    is available through ``tighten detect --judge`` and
    :func:`tighten.signals.detect.detect`."""
    from tighten.signals.detect import detect as _detect

    return _detect(store, agent=agent, full=full, now=now)
