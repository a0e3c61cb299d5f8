"""Acting on the owner's reply: parse it, check who sent it, record every decision with
its reason, deploy what was approved (each item on its own, through the registry's
guardrails), and answer in one message.

Nothing is guessed: an ambiguous reply is answered with a question and changes nothing.
Only approvers decide; anyone else gets a polite refusal and an audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from tighten.audit import record as audit
from tighten.errors import InputError, TightenError
from tighten.proposals.add import load_cycle
from tighten.proposals.model import Cycle, Proposal
from tighten.registry.artifacts import add_version, deploy, find_artifact, rollback
from tighten.registry.base import Registry
from tighten.registry.guardrails import check
from tighten.registry.model import Artifact, DeployResult
from tighten.review.digest import render_item
from tighten.review.grammar import (
    Ask,
    Command,
    Deploy,
    ItemRef,
    Mixed,
    Reject,
    Rollback,
    Show,
    Status,
    describe,
    parse_reply,
)
from tighten.store import Store
from tighten.store.schema import artifacts, audit_events, cycles, feedback, proposals

__all__ = ["ReplyOutcome", "handle_reply"]


@dataclass
class ReplyOutcome:
    """What the reply did and the message to send back."""

    command: Command | None
    message: str
    deployed: list[int] = field(default_factory=list)
    approved: list[int] = field(default_factory=list)  # semi/manual: the owner applies them
    failed: dict[int, list[str]] = field(default_factory=dict)
    rejected: list[int] = field(default_factory=list)
    refused_sender: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": type(self.command).__name__.lower() if self.command else None,
            "message": self.message,
            "deployed": self.deployed,
            "approved": self.approved,
            "failed": {str(k): v for k, v in self.failed.items()},
            "rejected": self.rejected,
            "refused_sender": self.refused_sender,
        }


def handle_reply(
    store: Store,
    text: str,
    *,
    sender: str = "cli",
    approvers: Sequence[str] = (),
    cycle_id: int | None = None,
    channel: str = "cli",
    registry: Registry | None = None,
    now: datetime | None = None,
) -> ReplyOutcome:
    """Parse and carry out one reply to the cycle's digest (default: the latest open one).
    Approved auto items deploy to ``registry`` (default: tighten's database)."""
    now = now or datetime.now(UTC)
    with store.connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
    if not _may_decide(sender, approvers):
        with store.begin() as conn:
            audit(conn, actor=sender, action="review.refused", entity_type="cycle",
                  entity_id=str(cycle.cycle_id), after={"reply": text[:500], "channel": channel},
                  reason="not an approver", now=now)  # fmt: skip
        return ReplyOutcome(None, "Sorry, only the agent's approvers can decide on these changes.",
                            refused_sender=True)  # fmt: skip
    pending = [p for p in items if p.status == "pending" and p.number is not None]
    refs = [_ref(p) for p in pending]
    command = parse_reply(text, refs)
    if isinstance(command, Ask):
        # Decisions are only about pending items, but showing or rolling back an item
        # that was already decided is fine: read the reply against every item.
        again = parse_reply(text, [_ref(p) for p in items if p.number is not None])
        if isinstance(again, Show | Rollback):
            command = again
    outcome = ReplyOutcome(command, describe(command, refs))
    by_number = {p.number: p for p in items if p.number is not None}
    if isinstance(command, Deploy | Reject | Mixed):
        deploy_numbers = command.numbers if isinstance(command, Deploy) else ()
        reject_numbers = command.numbers if isinstance(command, Reject) else ()
        if isinstance(command, Mixed):
            deploy_numbers, reject_numbers = command.deploy, command.reject
        for number in reject_numbers:
            _decide(store, by_number[number], "reject", command.reason, sender, channel, now)
            outcome.rejected.append(number)
        # In a mixed reply the reason follows the rejection ("deploy 1, reject 2 because
        # ..."): it is the rejection's, not the approval's.
        approval_reason = None if isinstance(command, Mixed) else command.reason
        for number in deploy_numbers:
            _approve(store, cycle, by_number[number], approval_reason, sender, channel, now,
                     outcome, registry)  # fmt: skip
        outcome.message = _summary(outcome, describe(command, refs))
        _close_if_done(store, cycle, now)
    elif isinstance(command, Show):
        outcome.message = render_item(by_number[command.number], "text")
    elif isinstance(command, Status):
        outcome.message = _status(items)
    elif isinstance(command, Rollback):
        outcome.message = _rollback(store, cycle, items, command, sender, channel, now, registry)
    elif isinstance(command, Ask):
        outcome.message = command.question
    return outcome


def _may_decide(sender: str, approvers: Sequence[str]) -> bool:
    return sender in approvers if approvers else sender == "cli"


def _ref(p: Proposal) -> ItemRef:
    assert p.number is not None
    return ItemRef(p.number, p.deployability, p.target_artifact)


def _decide(
    store: Store, p: Proposal, decision: str, reason: str | None, actor: str, channel: str,
    now: datetime, status: str | None = None, learned: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Record one decision (the feedback the learning step reads) and the new status."""
    new_status = status or ("rejected" if decision == "reject" else "approved")
    with store.begin() as conn:
        conn.execute(insert(feedback).values(
            proposal_id=p.proposal_id, decision=decision, reason=reason, actor=actor,
            channel=channel, learned=learned, created_at=now,
        ))  # fmt: skip
        _set_status(conn, p, new_status, actor, reason, now)


def _set_status(
    conn: Connection, p: Proposal, status: str, actor: str, reason: str | None, now: datetime
) -> None:
    conn.execute(update(proposals).where(proposals.c.proposal_id == p.proposal_id)
                 .values(status=status, updated_at=now))  # fmt: skip
    audit(conn, actor=actor, action=f"proposal.{status}", entity_type="proposal",
          entity_id=str(p.proposal_id), before={"status": p.status}, after={"status": status},
          reason=reason, now=now)  # fmt: skip


def _approve(
    store: Store, cycle: Cycle, p: Proposal, reason: str | None, actor: str, channel: str,
    now: datetime, outcome: ReplyOutcome, registry: Registry | None,
) -> None:  # fmt: skip
    """An approved auto item is deployed now; semi and manual ones are recorded as
    approved for the owner to apply."""
    assert p.number is not None
    if p.deployability != "auto":
        _decide(store, p, "approve", reason, actor, channel, now)
        outcome.approved.append(p.number)
        return
    if registry is not None and registry.name != "db":
        result = _deploy_external(store, registry, cycle, p, reason, actor, now)
    else:
        result = _deploy(store, cycle, p, reason, actor, now)
    if result is None or not result.ok:
        failures = list(result.failures) if result else ["the proposal carries no new content"]
        _decide(store, p, "approve", reason, actor, channel, now, status="failed",
                learned={"deploy_failures": failures})  # fmt: skip
        outcome.failed[p.number] = failures
        return
    _decide(store, p, "approve", reason, actor, channel, now, status="deployed")
    outcome.deployed.append(p.number)


def _deploy(
    store: Store, cycle: Cycle, p: Proposal, reason: str | None, actor: str, now: datetime
) -> DeployResult | None:
    if not p.target_artifact or p.proposed_value is None:
        return None
    agent = p.agent or cycle.agent
    why = f"proposal {p.number} of cycle {cycle.cycle_id}" + (f": {reason}" if reason else "")
    try:
        with store.begin() as conn:
            artifact = find_artifact(conn, agent, p.target_artifact)
            version, _ = add_version(
                conn, artifact, p.proposed_value, author=actor, reason=why, now=now
            )
    except InputError as exc:
        return DeployResult(p.target_artifact, "production", False, failures=(str(exc),))
    # The loop deploys on the owner's approval: a human-only artifact still refuses it.
    return deploy(store, agent, p.target_artifact, version.number, actor=actor, reason=why,
                  actor_is_human=False, now=now)  # fmt: skip


def _deploy_external(
    store: Store, registry: Registry, cycle: Cycle, p: Proposal, reason: str | None,
    actor: str, now: datetime,
) -> DeployResult | None:  # fmt: skip
    """Deploy to a git repository or a prompt service: tighten's guardrails first (with
    the artifact's settings when it is registered here, else those of a prompt), then a
    new version there and the production label moved to it."""
    if not p.target_artifact or p.proposed_value is None:
        return None
    agent = p.agent or cycle.agent
    why = f"proposal {p.number} of cycle {cycle.cycle_id}" + (f": {reason}" if reason else "")
    with store.connect() as conn:
        try:
            artifact = find_artifact(conn, agent, p.target_artifact)
        except InputError:
            artifact = Artifact(0, agent, p.target_artifact, "prompt", False, (), None, now)
    failures = check(artifact, p.proposed_value, actor_is_human=False)
    if failures:
        return DeployResult(p.target_artifact, "production", False, failures=tuple(failures))
    try:
        previous: str | None = registry.fetch(agent, p.target_artifact, "production").version
    except TightenError:
        previous = None  # nothing in production there yet
    try:
        version = registry.publish(
            agent, p.target_artifact, p.proposed_value, author=actor, reason=why
        )
        registry.move_label(
            agent, p.target_artifact, version, "production", actor=actor, reason=why
        )
    except TightenError as exc:
        return DeployResult(p.target_artifact, "production", False, failures=(str(exc),))
    with store.begin() as conn:
        audit(
            conn,
            actor=actor,
            action="label.deploy",
            entity_type="artifact",
            entity_id=f"{agent}/{p.target_artifact}",
            before={"registry": registry.name, "version": previous},
            after={"registry": registry.name, "version": version},
            reason=why,
            now=now,
        )
    return DeployResult(p.target_artifact, "production", True)


def _summary(outcome: ReplyOutcome, echo: str) -> str:
    parts = [echo]
    if outcome.deployed:
        parts.append(f"Deployed: {_items(outcome.deployed)}.")
    if outcome.approved:
        parts.append(f"Approved for you to apply (config or code): {_items(outcome.approved)}.")
    for number, failures in outcome.failed.items():
        parts.append(f"Item {number} was not deployed: {'; '.join(failures)}.")
    if outcome.rejected:
        parts.append(f"Rejected: {_items(outcome.rejected)}.")
    return " ".join(parts)


def _items(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _status(items: Sequence[Proposal]) -> str:
    counts: dict[str, list[str]] = {}
    for p in items:
        counts.setdefault(p.status, []).append(str(p.number))
    return (
        "; ".join(f"{status}: {', '.join(nums)}" for status, nums in sorted(counts.items()))
        or "No items."
    )


def _rollback(
    store: Store, cycle: Cycle, items: Sequence[Proposal], command: Rollback, actor: str,
    channel: str, now: datetime, registry: Registry | None,
) -> str:  # fmt: skip
    """Roll back the named artifact (or, for "undo", this cycle's last deployed item) one
    deploy, and record it on the proposal that deployed it."""
    external = registry is not None and registry.name != "db"
    deployed = sorted((p for p in items if p.status == "deployed"), key=lambda p: p.updated_at)
    with store.connect() as conn:
        names = list(
            conn.execute(select(artifacts.c.name).where(artifacts.c.agent == cycle.agent)).scalars()
        )
    if external:  # artifacts there need not be registered here: the cycle's targets count
        names = sorted(set(names) | {p.target_artifact for p in items if p.target_artifact})
    if command.target is None:
        if not deployed or not deployed[-1].target_artifact:
            return "Nothing was deployed from this cycle. Which artifact should I roll back?"
        matches = [deployed[-1].target_artifact]
    else:
        wanted = command.target.strip().lower().replace(" ", "_")
        matches = [n for n in names if n.lower() == wanted] or [
            n for n in names if wanted in n.lower()
        ]
    if len(matches) != 1:
        known = ", ".join(sorted(names)) or "none"
        return f"Which artifact should I roll back? The agent's artifacts: {known}."
    if external:
        assert registry is not None
        done = _rollback_external(
            store, registry, cycle.agent, matches[0], actor, command.reason, now
        )
        if not done.startswith("Rolled back"):
            return done
        _record_rollback(store, deployed, matches[0], command.reason, actor, channel, now)
        return done
    try:
        result = rollback(
            store, cycle.agent, matches[0], actor=actor, reason=command.reason, now=now
        )
    except InputError as exc:
        return str(exc)
    _record_rollback(store, deployed, matches[0], command.reason, actor, channel, now)
    return f"Rolled back {matches[0]}: production v{result.from_number} → v{result.to_number}."


def _record_rollback(
    store: Store, deployed: Sequence[Proposal], artifact: str, reason: str | None,
    actor: str, channel: str, now: datetime,
) -> None:  # fmt: skip
    for p in reversed(deployed):
        if p.target_artifact == artifact:
            _decide(store, p, "rollback", reason, actor, channel, now, status="rolled_back")
            return


def _rollback_external(
    store: Store, registry: Registry, agent: str, artifact: str, actor: str,
    reason: str | None, now: datetime,
) -> str:  # fmt: skip
    """One deploy back in an external registry: replay this registry's deploys and
    rollbacks of the artifact from the audit log (deploys push the version they replaced,
    rollbacks pop), and move production to the version the last live deploy replaced."""
    entity = f"{agent}/{artifact}"
    with store.connect() as conn:
        events = conn.execute(
            select(audit_events.c.action, audit_events.c.before, audit_events.c.after)
            .where(audit_events.c.entity_type == "artifact", audit_events.c.entity_id == entity)
            .order_by(audit_events.c.event_id)
        ).all()  # fmt: skip
    stack: list[tuple[str | None, str]] = []
    for action, before, after in events:
        if (after or {}).get("registry") != registry.name:
            continue
        if action == "label.deploy":
            stack.append(((before or {}).get("version"), after["version"]))
        elif action == "label.rollback" and stack:
            stack.pop()
    if not stack or stack[-1][0] is None:
        return f"{artifact} has no earlier production version in {registry.name} to roll back to."
    target, current = stack[-1]
    assert target is not None
    try:
        registry.move_label(
            agent, artifact, target, "production", actor=actor, reason=reason or "rollback"
        )
    except TightenError as exc:
        return str(exc)
    with store.begin() as conn:
        audit(
            conn,
            actor=actor,
            action="label.rollback",
            entity_type="artifact",
            entity_id=entity,
            before={"registry": registry.name, "version": current},
            after={"registry": registry.name, "version": target},
            reason=reason,
            now=now,
        )
    return f"Rolled back {artifact} in {registry.name}: production {current[:12]} → {target[:12]}."


def _close_if_done(store: Store, cycle: Cycle, now: datetime) -> None:
    with store.begin() as conn:
        still_pending = (proposals.c.cycle_id == cycle.cycle_id) & (proposals.c.status == "pending")
        left = conn.execute(
            select(func.count()).select_from(proposals).where(still_pending)
        ).scalar_one()
        if left == 0 and cycle.status == "open":
            conn.execute(update(cycles).where(cycles.c.cycle_id == cycle.cycle_id)
                         .values(status="reviewed", reviewed_at=now))  # fmt: skip
            audit(conn, actor="review", action="cycle.reviewed", entity_type="cycle",
                  entity_id=str(cycle.cycle_id), now=now)  # fmt: skip
