"""Writing sessions, spans and rejects to the store: batched, idempotent, atomic.

Every function here runs inside the caller's transaction, so a batch commits whole or not
at all.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from tighten.store.schema import (
    UTCDateTime,
    agents,
    messages,
    rejects,
    sessions,
    spans,
    tool_calls,
)
from tighten.traces.model import Reject, Session

__all__ = [
    "SpanWrite",
    "WriteCounts",
    "insert_ignore",
    "write_rejects",
    "write_sessions",
    "write_spans",
]

SESSION_COLUMNS = [c.name for c in sessions.columns if c.name not in ("session_id", "ingested_at")]


@dataclass(slots=True)
class WriteCounts:
    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0

    def add(self, other: WriteCounts) -> None:
        self.accepted += other.accepted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stale += other.stale


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows through the driver's executemany, skipping SQLAlchemy's per-row
    parameter processing (the hot path of ingest). Values are converted here the way the
    column types would: JSON to text, times to each dialect's form, booleans for SQLite."""
    if not rows:
        return
    columns = list(rows[0])
    sqlite_dialect = conn.dialect.name == "sqlite"
    mark = "?" if sqlite_dialect else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)})"
    )
    convert = [
        (i, f)
        for i, c in enumerate(columns)
        if (f := _converter(table.c[c].type, sqlite_dialect)) is not None
    ]
    convert = [(i, _json_texts() if f is _json_text else f) for i, f in convert]
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row.values())
        for i, f in convert:
            if values[i] is not None:
                values[i] = f(values[i])
        params.append(tuple(values))
    conn.exec_driver_sql(sql, params)


def _converter(kind: Any, sqlite_dialect: bool) -> Callable[[Any], Any] | None:
    if isinstance(kind, String) and kind.length:
        return functools.partial(_clip, kind.length)
    if isinstance(kind, JSON):
        return _json_text
    if isinstance(kind, UTCDateTime | DateTime) and sqlite_dialect:
        return _sqlite_time
    if isinstance(kind, Boolean) and sqlite_dialect:
        return int
    return None


def _clip(limit: int, value: Any) -> Any:
    """Cut a text to its column's length (PostgreSQL refuses longer ones; SQLite would
    keep them, and both dialects must store the same)."""
    return value[:limit] if isinstance(value, str) and len(value) > limit else value


def _json_text(value: Any) -> str:
    if isinstance(value, RawJson):
        return value.text
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_texts() -> Callable[[Any], str]:
    """:func:`_json_text` remembering the text of each object, for one ``bulk_insert``
    (whose rows keep every object alive, so ids are not reused): the spans of a request
    share their resource and scope."""
    seen: dict[int, str] = {}

    def text(value: Any) -> str:
        found = seen.get(id(value))
        if found is None:
            found = seen[id(value)] = _json_text(value)
        return found

    return text


class RawJson:
    """JSON already serialized (a session body), passed through as is."""

    __slots__ = ("text",)

    def __init__(self, data: bytes) -> None:
        self.text = data.decode()


@functools.lru_cache(maxsize=1024)  # a batch shares its ingest time across its rows
def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (UTC, no offset)."""
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:  # isoformat pads the year to four digits, strftime may not
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def insert_ignore(conn: Connection, table: Table) -> Any:
    """An INSERT that skips rows whose key already exists, on either dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ensure_agents(conn: Connection, names: set[str], now: datetime) -> None:
    rows = [{"name": n, "description": None, "created_at": now} for n in sorted(names)]
    if rows:
        conn.execute(insert_ignore(conn, agents), rows)


def clip_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Cut every text to its column's length (for statements that bypass bulk_insert)."""
    for name, value in row.items():
        kind = table.c[name].type
        if isinstance(value, str) and isinstance(kind, String) and kind.length:
            row[name] = _clip(kind.length, value)
    return row


def _session_row(s: Session, content_hash: str, now: datetime) -> dict[str, Any]:
    return clip_row(
        sessions,
        {
            "session_id": s.session_id,
            "agent": s.agent,
            "source": s.source,
            "origin": s.origin,
            "channel": s.channel,
            "task_category": s.task_category,
            "model": s.model,
            "started_at": s.started_at,
            "ended_at": s.ended_at,
            "message_count": len(s.messages),
            "tool_call_count": len(s.tool_calls),
            "tool_error_count": sum(1 for c in s.tool_calls if c.status == "error"),
            "span_count": s.span_count,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "total_tokens": s.total_tokens,
            "cost_usd": s.cost_usd,
            "outcome_success": s.outcome_success,
            "outcome_reward": s.outcome_reward,
            "outcome": s.outcome,
            "artifact_versions": s.artifact_versions or None,
            "attributes": s.attributes or None,
            "content_hash": content_hash,
            "ingested_at": now,
            "updated_at": now,
        },
    )


def _tool_rows(s: Session) -> list[dict[str, Any]]:
    return [
        {
            "session_id": s.session_id,
            "position": position,
            "message_index": c.message_index,
            "call_id": c.call_id,
            "name": c.name[:200],
            "arguments": c.arguments,
            "result": c.result,
            "error": c.error,
            "status": c.status,
            "latency_ms": c.latency_ms,
            "started_at": c.started_at,
        }
        for position, c in enumerate(s.tool_calls)
    ]


def write_sessions(conn: Connection, batch: Iterable[Session], now: datetime) -> WriteCounts:
    """Insert new sessions, replace changed ones with a copy at least as full (as many
    messages or more), skip identical ones and older, shorter copies (``stale``)."""
    by_id = {s.session_id: s for s in batch}  # a later copy in the same batch wins
    counts = WriteCounts()
    if not by_id:
        return counts
    existing: dict[str, tuple[str, int]] = {}
    for ids in _chunks(list(by_id)):
        query = select(sessions.c.session_id, sessions.c.content_hash, sessions.c.message_count)
        for sid, digest, stored in conn.execute(query.where(sessions.c.session_id.in_(ids))):
            existing[sid] = (digest, stored)
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    for session_id, s in by_id.items():
        digest = s.content_hash()
        stored_digest, stored_count = existing.get(session_id, ("", 0))
        if stored_digest == digest:
            counts.unchanged += 1
            continue
        if len(s.messages) < stored_count:
            counts.stale += 1
            continue
        (changed_rows if session_id in existing else new_rows).append(_session_row(s, digest, now))
    ensure_agents(conn, {r["agent"] for r in new_rows + changed_rows}, now)
    if changed_rows:
        changed = [r["session_id"] for r in changed_rows]
        for ids in _chunks(changed):
            conn.execute(delete(tool_calls).where(tool_calls.c.session_id.in_(ids)))
            conn.execute(delete(messages).where(messages.c.session_id.in_(ids)))
        stmt = (
            update(sessions)
            .where(sessions.c.session_id == bindparam("b_session_id"))
            .values({c: bindparam(c) for c in SESSION_COLUMNS})
        )
        conn.execute(stmt, [{**r, "b_session_id": r["session_id"]} for r in changed_rows])
    bulk_insert(conn, sessions, new_rows)
    written = [by_id[r["session_id"]] for r in new_rows + changed_rows]
    bulk_insert(
        conn,
        messages,
        [
            {
                "session_id": s.session_id,
                "message_count": len(s.messages),
                "body": RawJson(s.body_json()),
            }
            for s in written
        ],
    )
    bulk_insert(conn, tool_calls, [row for s in written for row in _tool_rows(s)])
    counts.accepted = len(new_rows)
    counts.updated = len(changed_rows)
    return counts


def write_rejects(
    conn: Connection, source: str, fmt: str | None, items: list[Reject], now: datetime
) -> None:
    """Quarantine unusable records; the same record from the same place is stored once."""
    rows = [
        {
            "source": source,
            "line": r.line,
            "format": fmt,
            "reason": r.reason[:2000],
            "excerpt": r.excerpt,
            "record_hash": r.record_hash or hashlib.sha256(r.excerpt.encode()).hexdigest(),
            "received_at": now,
        }
        for r in items
    ]
    if rows:
        conn.execute(insert_ignore(conn, rejects), rows)


def span_hash(span: dict[str, Any]) -> str:
    raw = orjson.dumps(span, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()


@dataclass(slots=True)
class SpanWrite:
    """What :func:`write_spans` did: the sessions whose spans changed, how many spans were
    new or changed, and the spans of sessions that had none stored before this batch (by
    session, as :func:`load_spans` would read them back)."""

    touched: set[str]
    stored: int
    fresh: dict[str, list[dict[str, Any]]]


def write_spans(conn: Connection, batch: list[dict[str, Any]], now: datetime) -> SpanWrite:
    """Store raw spans (idempotent by trace and span id).

    A span that names no session falls back to its trace id; when another span of the same
    trace (in this batch or stored earlier) names a session, the whole trace joins it.
    """
    by_key = {(s["trace_id"], s["span_id"]): s for s in batch}
    _resolve_trace_sessions(conn, by_key.values())
    existing = _stored_hashes(conn, by_key)
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    fresh: dict[str, list[dict[str, Any]]] = {}
    kept: set[str] = set()  # sessions with a span of this batch that was stored before
    for key, span in by_key.items():
        digest = span_hash(span)
        stored = existing.get(key)
        if stored is not None:
            kept.add(span["session_id"])
            if stored != digest:
                changed_rows.append(_span_row(span, digest, now))
            continue
        row = _span_row(span, digest, now)
        new_rows.append(row)
        fields = span if span.keys() == SPAN_KEYS else _span_fields(row)
        fresh.setdefault(row["session_id"], []).append(fields)
    bulk_insert(conn, spans, new_rows)
    _update_spans(conn, changed_rows)
    touched = {r["session_id"] for r in new_rows + changed_rows}
    fresh = {sid: group for sid, group in fresh.items() if sid not in kept}
    return SpanWrite(touched, len(new_rows) + len(changed_rows), fresh)


SPAN_FIELDS = tuple(c.name for c in spans.columns if c.name not in ("span_hash", "received_at"))
SPAN_KEYS = frozenset(SPAN_FIELDS)


def _span_row(span: dict[str, Any], digest: str, now: datetime) -> dict[str, Any]:
    row = {name: span.get(name) for name in SPAN_FIELDS}
    row["span_hash"] = digest
    row["received_at"] = now
    return row


def _span_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A span row as :func:`load_spans` reads it back."""
    return {name: row[name] for name in SPAN_FIELDS}


def _update_spans(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = [c.name for c in spans.columns if c.name not in ("trace_id", "span_id")]
    stmt = (
        update(spans)
        .where(spans.c.trace_id == bindparam("b_trace_id"))
        .where(spans.c.span_id == bindparam("b_span_id"))
        .values({c: bindparam(c) for c in cols})
    )
    conn.execute(
        stmt, [{**r, "b_trace_id": r["trace_id"], "b_span_id": r["span_id"]} for r in rows]
    )


def _stored_hashes(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The stored hash of each span key that is in the store. Looked up by trace id (the
    leading column of the primary key): a row-value ``IN`` list makes SQLite scan the
    whole table, which made every batch slower than the last."""
    wanted = set(keys)
    found: dict[tuple[str, str], str] = {}
    query = select(spans.c.trace_id, spans.c.span_id, spans.c.span_hash)
    for ids in _chunks(sorted({trace_id for trace_id, _ in wanted})):
        for trace_id, span_id, digest in conn.execute(query.where(spans.c.trace_id.in_(ids))):
            if (trace_id, span_id) in wanted:
                found[trace_id, span_id] = digest
    return found


def _resolve_trace_sessions(conn: Connection, batch: Iterable[dict[str, Any]]) -> None:
    """Give trace-id-fallback spans the session their trace already has in the store, and
    move earlier fallback spans of a trace to the session a new span names."""
    fallback = {s["trace_id"] for s in batch if s["session_id"] == s["trace_id"]}
    named = {s["trace_id"]: s["session_id"] for s in batch if s["session_id"] != s["trace_id"]}
    if fallback:
        for ids in _chunks(sorted(fallback)):
            query = select(spans.c.trace_id, spans.c.session_id).where(
                spans.c.trace_id.in_(ids), spans.c.session_id != spans.c.trace_id
            )
            known = dict(conn.execute(query.distinct()).all())
            for span in batch:
                if span["session_id"] == span["trace_id"] and span["trace_id"] in known:
                    span["session_id"] = known[span["trace_id"]]
    stale: set[str] = set()
    for ids in _chunks(sorted(named)):
        query = select(spans.c.trace_id).where(
            spans.c.trace_id.in_(ids), spans.c.session_id == spans.c.trace_id
        )
        stale.update(conn.execute(query.distinct()).scalars())
    for trace_id in sorted(stale):
        conn.execute(
            update(spans)
            .where(spans.c.trace_id == trace_id, spans.c.session_id == trace_id)
            .values(session_id=named[trace_id])
        )
        conn.execute(
            delete(sessions).where(sessions.c.session_id == trace_id, sessions.c.origin == "otlp")
        )


def load_spans(
    conn: Connection,
    session_ids: Iterable[str],
    fresh: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every stored span of the given sessions, grouped by session id (in id order).

    ``fresh`` holds spans just inserted (see :class:`SpanWrite`): a session whose stored
    spans are exactly those (as many in the store as there) is taken from it rather than
    read back."""
    ids = sorted(set(session_ids))
    grouped = _fresh_groups(conn, [i for i in ids if i in (fresh or {})], fresh or {})
    cols = [spans.c[name] for name in SPAN_FIELDS]
    for chunk in _chunks([i for i in ids if i not in grouped]):
        for row in conn.execute(select(*cols).where(spans.c.session_id.in_(chunk))).mappings():
            grouped.setdefault(row["session_id"], []).append(dict(row))
    return {i: grouped[i] for i in ids if i in grouped}


def _fresh_groups(
    conn: Connection, ids: list[str], fresh: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """The fresh spans of each session whose every stored span is one of them."""
    counted = select(spans.c.session_id, func.count()).group_by(spans.c.session_id)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks(ids):
        for session_id, stored in conn.execute(counted.where(spans.c.session_id.in_(chunk))):
            if stored == len(fresh[session_id]):
                grouped[session_id] = fresh[session_id]
    return grouped
