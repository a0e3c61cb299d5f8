"""Sending the digest to a channel and acting on the replies that come back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from tighten.audit import record as audit
from tighten.config import Settings
from tighten.errors import InputError
from tighten.proposals.add import last_deployed, load_cycle
from tighten.registry.base import Registry
from tighten.review.channels.base import Channel
from tighten.review.decisions import ReplyOutcome, handle_reply
from tighten.review.digest import Format, LastEffect, render_digest
from tighten.store import Store
from tighten.store.schema import cycles

__all__ = ["HandledReply", "poll_replies", "send_digest"]

MARKDOWN_CHANNELS = frozenset({"slack", "github"})


def send_digest(
    store: Store, channel: Channel, *, cycle_id: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Render the cycle's digest for ``channel`` (markdown for Slack and GitHub, plain
    text elsewhere), send it, and keep the text on the cycle."""
    now = now or datetime.now(UTC)
    with store.connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
        previous = last_deployed(conn, cycle)
    last = [LastEffect(p.number or 0, p.headline, None) for p in previous]
    fmt: Format = "markdown" if channel.name in MARKDOWN_CHANNELS else "text"
    parts = render_digest(cycle, items, last_deployed=last, fmt=fmt)
    ids = channel.send(parts)
    with store.begin() as conn:
        conn.execute(
            update(cycles)
            .where(cycles.c.cycle_id == cycle.cycle_id)
            .values(digest="\n\n".join(parts))
        )
        audit(conn, actor="review", action="digest.sent", entity_type="cycle",
              entity_id=str(cycle.cycle_id), after={"channel": channel.name, "messages": ids},
              now=now)  # fmt: skip
    return {
        "cycle_id": cycle.cycle_id,
        "channel": channel.name,
        "parts": len(parts),
        "message_ids": ids,
    }


@dataclass
class HandledReply:
    sender: str
    text: str
    outcome: ReplyOutcome | None
    answer: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "text": self.text,
            "answer": self.answer,
            "outcome": self.outcome.as_dict() if self.outcome else None,
        }


def poll_replies(
    store: Store,
    channel: Channel,
    *,
    settings: Settings,
    registry: Registry | None = None,
    cycle_id: int | None = None,
) -> list[HandledReply]:
    """Fetch new replies from ``channel``, carry each out, and answer it on the channel."""
    handled = []
    for reply in channel.poll():
        try:
            outcome: ReplyOutcome | None = handle_reply(
                store, reply.text, sender=reply.sender, approvers=settings.approvers,
                cycle_id=cycle_id, channel=channel.name, registry=registry,
            )  # fmt: skip
            answer = outcome.message if outcome else ""
        except InputError as exc:
            outcome, answer = None, str(exc)
        channel.send([answer])
        handled.append(HandledReply(reply.sender, reply.text, outcome, answer))
    return handled
