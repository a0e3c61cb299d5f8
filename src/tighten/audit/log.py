"""Append-only audit events: who, when, what, before, after, why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from tighten.store.schema import audit_events

__all__ = ["record"]


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """Write one audit event inside the caller's transaction, so the event and the change
    it describes commit or roll back together."""
    conn.execute(
        audit_events.insert().values(
            occurred_at=now or datetime.now(UTC),
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=before,
            after=after,
            reason=reason,
        )
    )
