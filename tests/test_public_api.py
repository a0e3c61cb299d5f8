"""The public surface is deliberate: a sorted ``__all__`` whose names all exist."""

from __future__ import annotations

from pathlib import Path

import tighten
from tighten import Settings, ingest, ingest_sessions, open_store


def test_all_is_sorted_and_complete() -> None:
    assert tighten.__all__ == sorted(tighten.__all__)
    for name in tighten.__all__:
        assert hasattr(tighten, name), name


def test_ingest_from_python(tmp_path: Path) -> None:
    settings = Settings.load(database_url=f"sqlite:///{tmp_path / 'api.db'}")
    store = open_store(settings)
    report = ingest_sessions(
        store,
        [{"session_id": "py-1", "messages": [{"role": "user", "content": "hi"}]}, {"bad": 1}],
        settings=settings,
        agent="sdk-agent",
    )
    assert (report.accepted, report.rejected) == (1, 1)
    again = ingest(store, [], settings=settings)
    assert again.accepted == 0
    store.close()
