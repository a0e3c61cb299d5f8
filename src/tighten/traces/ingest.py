"""Ingestion: read inputs in any known format, in constant memory, and write them to the
store in atomic batches.

Nothing is lost: a bad record is quarantined with its place and reason and never takes
good records down with it; a batch commits whole or not at all; ingesting the same data
twice changes nothing.
"""

from __future__ import annotations

import functools
import gzip
import io
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError

from tighten.audit import record as audit
from tighten.config import Settings
from tighten.errors import InputError, StoreError
from tighten.plugins import plugin_manager
from tighten.store import Store
from tighten.traces.formats.base import (
    ReadContext,
    RecordError,
    SessionRecord,
    SpanRecord,
    TraceFormat,
    make_reject,
)
from tighten.traces.model import Reject, Session
from tighten.traces.write import (
    WriteCounts,
    load_spans,
    write_rejects,
    write_sessions,
    write_spans,
)

__all__ = ["IngestReport", "detect_format", "ingest_paths", "ingest_sessions", "ingest_stream"]

HEAD_BYTES = 64 * 1024
SPAN_BATCH = 5000
Progress = Callable[[int], None]


@dataclass
class IngestReport:
    """What an ingest did. ``rejected`` records are in the ``rejects`` table."""

    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0
    spans: int = 0
    formats: dict[str, str] = field(default_factory=dict)
    reject_samples: list[tuple[str, int | None, str]] = field(default_factory=list)

    @property
    def read_anything(self) -> bool:
        return bool(self.accepted or self.updated or self.unchanged or self.stale or self.spans)

    def add_counts(self, counts: WriteCounts) -> None:
        self.accepted += counts.accepted
        self.updated += counts.updated
        self.unchanged += counts.unchanged
        self.stale += counts.stale

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "rejected": self.rejected,
            "spans": self.spans,
            "formats": self.formats,
            "rejects": [
                {"source": s, "line": line, "reason": reason}
                for s, line, reason in self.reject_samples
            ],
        }


def formats() -> list[TraceFormat]:
    """Every registered input format, in the order they are tried."""
    found = [f for group in plugin_manager().hook.register_trace_formats() for f in group]
    return sorted(found, key=lambda f: f.priority)


def detect_format(head: bytes) -> TraceFormat | None:
    """The first registered format that accepts the beginning of an input."""
    return next((f for f in formats() if f.sniff(head)), None)


@contextmanager
def _open(path: str) -> Iterator[tuple[io.BufferedReader[Any], BinaryIO]]:
    """Open a path (or ``-`` for standard input), transparently un-gzipping it. Yields the
    readable stream and the raw file (whose position measures progress)."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InputError(f"Cannot read {path}: {exc.strerror}.") from None
    try:
        buffered: io.BufferedReader[Any] = io.BufferedReader(raw, buffer_size=1 << 20)
        if buffered.peek(2)[:2] == b"\x1f\x8b":
            unzipped = gzip.GzipFile(fileobj=buffered, mode="rb")
            yield io.BufferedReader(unzipped, buffer_size=1 << 20), raw
        else:
            yield buffered, raw
    finally:
        if path != "-":
            raw.close()


def _head(stream: io.BufferedReader[Any]) -> bytes:
    head = stream.peek(HEAD_BYTES)
    while len(head) < HEAD_BYTES:  # peek returns at most one buffer refill
        more = stream.peek(len(head) + 1)
        if len(more) <= len(head):
            break
        head = more
    return head[:HEAD_BYTES]


class _Batcher:
    """Collects records and writes them in atomic batches."""

    def __init__(self, store: Store, source: str, fmt: str, settings: Settings) -> None:
        self.store, self.source, self.fmt = store, source, fmt
        self.batch_size = settings.ingest_batch_size
        self.context = ReadContext(source=source)
        self.sessions: list[Session] = []
        self.spans: list[dict[str, Any]] = []
        self.rejects: list[Reject] = []
        self.report = IngestReport()

    def add(self, rec: SessionRecord | SpanRecord | Reject) -> None:
        if isinstance(rec, SessionRecord):
            self.sessions.append(rec.session)
        elif isinstance(rec, SpanRecord):
            self.spans.extend(rec.spans)
        else:
            self.rejects.append(rec)
            if len(self.report.reject_samples) < 20:
                self.report.reject_samples.append((self.source, rec.line, rec.reason))
        if len(self.sessions) >= self.batch_size or len(self.spans) >= SPAN_BATCH:
            self.flush()

    def flush(self) -> None:
        if not (self.sessions or self.spans or self.rejects):
            return
        try:
            counts = self._write()
        except IntegrityError:
            # Another process stored some of these records between our read and our
            # write (two ingests of the same data at once): the batch was rolled back
            # whole; once more, it finds them and counts them as unchanged or updated.
            try:
                counts = self._write()
            except IntegrityError:
                raise StoreError(
                    f"Another process keeps writing the same records as this ingest of "
                    f"{self.source}; nothing of this batch was stored. Run it again."
                ) from None
        self.report.add_counts(counts)
        self.report.rejected += len(self.rejects)
        self.sessions, self.spans, self.rejects = [], [], []

    def _write(self) -> WriteCounts:
        now = datetime.now(UTC)
        with self.store.begin() as conn:
            counts = write_sessions(conn, self.sessions, now)
            if self.spans:
                written = write_spans(conn, self.spans, now)
                self.report.spans += written.stored
                counts.unchanged += len({s["session_id"] for s in self.spans} - written.touched)
                grouped = load_spans(conn, written.touched, written.fresh)
                assembled = _assemble(grouped, self.context)
                more = write_sessions(conn, assembled, now)
                counts.accepted += more.accepted
                counts.updated += more.updated
            write_rejects(conn, self.source, self.fmt, self.rejects, now)
            if counts.accepted or counts.updated or self.rejects:
                audit(
                    conn,
                    actor="ingest",
                    action="ingest",
                    entity_type="sessions",
                    entity_id=self.source,
                    after={
                        "accepted": counts.accepted,
                        "updated": counts.updated,
                        "rejected": len(self.rejects),
                        "format": self.fmt,
                    },
                    now=now,
                )
        return counts


def _assemble(grouped: dict[str, list[dict[str, Any]]], context: ReadContext) -> list[Session]:
    from tighten.traces.formats.otlp import assemble_session

    return [assemble_session(sid, group, context) for sid, group in grouped.items()]


def ingest_stream(
    store: Store,
    stream: io.BufferedReader[Any],
    *,
    source: str,
    settings: Settings,
    agent: str | None = None,
    progress: Callable[[], None] | None = None,
) -> IngestReport:
    """Ingest one (already un-gzipped) input stream, detecting its format."""
    try:
        head = _head(stream)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        batcher = _Batcher(store, source, "unknown", settings)
        batcher.add(make_reject(f"input ends early or is corrupt: {exc}", None, b""))
        batcher.flush()
        return batcher.report
    fmt = detect_format(head)
    batcher = _Batcher(store, source, fmt.name if fmt else "unknown", settings)
    if not head.strip():
        return batcher.report
    if fmt is None:
        batcher.add(make_reject("unrecognised format: not JSONL sessions or OTLP", None, head))
        batcher.flush()
        return batcher.report
    batcher.report.formats[source] = fmt.name
    context = ReadContext(
        source=source,
        agent=agent,
        max_record_bytes=settings.max_record_bytes,
        max_field_chars=settings.max_field_chars,
    )
    batcher.context = context
    try:
        for count, rec in enumerate(fmt.read(stream, context)):
            batcher.add(rec)
            if progress is not None and count % 256 == 0:
                progress()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # A truncated or corrupt compressed file: keep every whole record read before it.
        batcher.add(make_reject(f"input ends early or is corrupt: {exc}", None, b""))
    batcher.flush()
    return batcher.report


def ingest_paths(
    store: Store,
    paths: Iterable[str | Path],
    *,
    settings: Settings,
    agent: str | None = None,
    on_progress: Callable[[str, int, int | None], None] | None = None,
) -> IngestReport:
    """Ingest files (``-`` is standard input; ``.gz`` is detected from its content).
    ``on_progress(path, bytes_done, bytes_total)`` is called as the files are read."""
    total = IngestReport()
    for path in map(str, paths):
        if path != "-":
            path = str(Path(path).resolve())
        size = Path(path).stat().st_size if path != "-" and Path(path).is_file() else None
        with _open(path) as (stream, raw):
            tick = None
            if on_progress is not None and path != "-":
                tick = functools.partial(_report_progress, on_progress, path, raw, size)
            report = ingest_stream(
                store, stream, source=path, settings=settings, agent=agent, progress=tick
            )
        _merge(total, report)
    return total


def ingest_sessions(
    store: Store,
    items: Iterable[dict[str, Any]],
    *,
    settings: Settings,
    source: str = "python",
    agent: str | None = None,
) -> IngestReport:
    """Ingest session objects (the JSONL format, as Python dicts) from code."""
    from tighten.traces.formats.jsonl import parse_session

    batcher = _Batcher(store, source, "jsonl", settings)
    batcher.report.formats[source] = "python"
    context = ReadContext(
        source=source,
        agent=agent,
        max_record_bytes=settings.max_record_bytes,
        max_field_chars=settings.max_field_chars,
    )
    for number, obj in enumerate(items, start=1):
        try:
            batcher.add(SessionRecord(parse_session(obj, context), number))
        except RecordError as exc:
            batcher.add(make_reject(str(exc), number, repr(obj)[:1000]))
    batcher.flush()
    return batcher.report


def _report_progress(
    callback: Callable[[str, int, int | None], None], path: str, raw: BinaryIO, size: int | None
) -> None:
    callback(path, raw.tell(), size)


def _merge(total: IngestReport, part: IngestReport) -> None:
    total.accepted += part.accepted
    total.updated += part.updated
    total.unchanged += part.unchanged
    total.stale += part.stale
    total.rejected += part.rejected
    total.spans += part.spans
    total.formats.update(part.formats)
    total.reject_samples.extend(part.reject_samples[: 20 - len(total.reject_samples)])
