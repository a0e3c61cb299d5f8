"""Reading sessions back: lists with filters, one session whole, rejects, and totals."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, desc, func, select

from tighten.errors import InputError
from tighten.store.schema import (
    messages,
    rejects,
    session_metrics,
    sessions,
    signals,
    spans,
    tool_calls,
)

__all__ = [
    "get_session",
    "list_rejects",
    "list_sessions",
    "list_signals",
    "parse_since",
    "stats",
]

LIST_COLUMNS = (
    "session_id",
    "agent",
    "origin",
    "model",
    "channel",
    "task_category",
    "started_at",
    "ended_at",
    "message_count",
    "tool_call_count",
    "tool_error_count",
    "total_tokens",
    "cost_usd",
    "outcome_success",
    "outcome_reward",
    "ingested_at",
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``7d``, ``24h``, ``30m`` (before ``now``) or an ISO 8601 date/time, as UTC."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"Cannot read the time {text!r}: use a duration such as 7d or 24h, "
            "or an ISO date such as 2026-11-01."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _row(mapping: Any) -> dict[str, Any]:
    return dict(mapping)


def list_sessions(
    conn: Connection,
    *,
    agent: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    order: str = "recent",
    min_friction: float | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Sessions, newest first (``order="friction"``: highest friction score first).
    ``outcome`` is ``success``, ``failure`` or ``unknown``. Each row carries the
    session's ``friction_score`` and ``signal_types`` once ``tighten detect`` ran."""
    when = func.coalesce(sessions.c.started_at, sessions.c.ingested_at)
    query = select(
        *(sessions.c[c] for c in LIST_COLUMNS),
        session_metrics.c.friction_score,
        session_metrics.c.signal_types,
    ).outerjoin(session_metrics, session_metrics.c.session_id == sessions.c.session_id)
    if min_friction is not None:
        query = query.where(session_metrics.c.friction_score >= min_friction)
    if agent is not None:
        query = query.where(sessions.c.agent == agent)
    if since is not None:
        query = query.where(when >= since)
    if until is not None:
        query = query.where(when < until)
    if outcome is not None:
        conditions = {
            "success": sessions.c.outcome_success.is_(True),
            "failure": sessions.c.outcome_success.is_(False),
            "unknown": sessions.c.outcome_success.is_(None),
        }
        if outcome not in conditions:
            raise InputError(f"Unknown outcome {outcome!r}: use success, failure or unknown.")
        query = query.where(conditions[outcome])
    if order == "friction":
        score = func.coalesce(session_metrics.c.friction_score, -1.0)
        query = query.order_by(desc(score), sessions.c.session_id)
    elif order == "recent":
        query = query.order_by(desc(when), sessions.c.session_id)
    else:
        raise InputError(f"Unknown order {order!r}: use recent or friction.")
    query = query.limit(limit).offset(offset)
    return [_row(r) for r in conn.execute(query).mappings()]


def get_session(conn: Connection, session_id: str) -> dict[str, Any] | None:
    """One session with its transcript (``messages``), joined ``tool_calls``, and — once
    analysed — its ``metrics`` and ``signals``."""
    found = (
        conn.execute(select(sessions).where(sessions.c.session_id == session_id)).mappings().first()
    )
    if found is None:
        return None
    result = _row(found)
    body = conn.execute(select(messages.c.body).where(messages.c.session_id == session_id))
    result["messages"] = body.scalar() or []
    metrics = (
        conn.execute(select(session_metrics).where(session_metrics.c.session_id == session_id))
        .mappings()
        .first()
    )
    result["metrics"] = (
        {k: v for k, v in metrics.items() if k not in ("session_id", "agent")} if metrics else None
    )
    of_session = select(signals).where(signals.c.session_id == session_id)
    result["signals"] = [
        {k: v for k, v in r.items() if k not in ("session_id", "sessions", "scope")}
        for r in conn.execute(of_session.order_by(signals.c.signal_id)).mappings()
    ]
    calls = select(tool_calls).where(tool_calls.c.session_id == session_id)
    result["tool_calls"] = [
        {k: v for k, v in _row(r).items() if k != "session_id"}
        for r in conn.execute(calls.order_by(tool_calls.c.position)).mappings()
    ]
    return result


def list_rejects(
    conn: Connection, *, source: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Quarantined input records, newest first."""
    query = select(rejects).order_by(desc(rejects.c.reject_id)).limit(limit)
    if source is not None:
        query = query.where(rejects.c.source == source)
    return [_row(r) for r in conn.execute(query).mappings()]


def stats(conn: Connection, *, agent: str | None = None, top: int = 10) -> dict[str, Any]:
    """Totals over the stored sessions: counts, outcomes, tokens, cost and the tools used."""
    where = [] if agent is None else [sessions.c.agent == agent]
    totals = (
        conn.execute(
            select(
                func.count().label("sessions"),
                func.count(func.distinct(sessions.c.agent)).label("agents"),
                func.coalesce(func.sum(sessions.c.message_count), 0).label("messages"),
                func.coalesce(func.sum(sessions.c.tool_call_count), 0).label("tool_calls"),
                func.coalesce(func.sum(sessions.c.tool_error_count), 0).label("tool_errors"),
                func.count(sessions.c.outcome_success).label("with_outcome"),
                func.sum(case((sessions.c.outcome_success.is_(True), 1), else_=0)).label(
                    "successes"
                ),
                func.sum(sessions.c.total_tokens).label("total_tokens"),
                func.sum(sessions.c.cost_usd).label("cost_usd"),
                func.min(sessions.c.started_at).label("first_started_at"),
                func.max(sessions.c.started_at).label("last_started_at"),
            ).where(*where)
        )
        .mappings()
        .one()
    )
    result = _row(totals)
    for key in ("messages", "tool_calls", "tool_errors", "successes"):
        result[key] = int(result[key] or 0)
    for key in ("total_tokens",):
        result[key] = None if result[key] is None else int(result[key])
    result["cost_usd"] = None if result["cost_usd"] is None else float(result["cost_usd"])
    known = result["with_outcome"]
    result["success_rate"] = result["successes"] / known if known else None
    result["tools"] = _tool_stats(conn, agent, top)
    result["rejects"] = conn.execute(select(func.count()).select_from(rejects)).scalar_one()
    result["spans"] = conn.execute(select(func.count()).select_from(spans)).scalar_one()
    return result


def _tool_stats(conn: Connection, agent: str | None, top: int) -> list[dict[str, Any]]:
    errors = func.sum(case((tool_calls.c.status == "error", 1), else_=0))
    query = (
        select(
            tool_calls.c.name,
            func.count().label("calls"),
            errors.label("errors"),
            func.count(func.distinct(tool_calls.c.session_id)).label("sessions"),
        )
        .group_by(tool_calls.c.name)
        .order_by(desc("calls"), tool_calls.c.name)
        .limit(top)
    )
    if agent is not None:
        query = query.join(
            sessions,
            and_(sessions.c.session_id == tool_calls.c.session_id, sessions.c.agent == agent),
        )
    return [{**dict(r), "errors": int(r["errors"] or 0)} for r in conn.execute(query).mappings()]


def list_signals(
    conn: Connection,
    *,
    type_: str | None = None,
    agent: str | None = None,
    session_id: str | None = None,
    scope: str | None = None,
    polarity: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Signals, most severe first."""
    query = select(signals)
    for column, value in (
        (signals.c.type, type_),
        (signals.c.agent, agent),
        (signals.c.session_id, session_id),
        (signals.c.scope, scope),
        (signals.c.polarity, polarity),
    ):
        if value is not None:
            query = query.where(column == value)
    query = query.order_by(desc(signals.c.severity), signals.c.signal_id).limit(limit)
    return [_row(r) for r in conn.execute(query).mappings()]
