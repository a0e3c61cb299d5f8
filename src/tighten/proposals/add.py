"""Adding a cycle of proposals to the store, and reading cycles back.

Input is validated whole before anything is written: one bad proposal stops the cycle with
an error that names the proposal (its position in the input, 1-based, and its kind) and
the field. A valid cycle is written in one transaction with its audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from sqlalchemy import Connection, func, insert, select

from tighten.audit import record
from tighten.errors import InputError
from tighten.proposals.model import (
    GOALS,
    Cycle,
    Deployability,
    Evidence,
    Goal,
    Proposal,
    fingerprint,
)
from tighten.store import Store
from tighten.store.schema import cycles
from tighten.store.schema import proposals as proposals_table
from tighten.traces.write import ensure_agents

__all__ = ["CycleFile", "add_cycle", "last_deployed", "load_cycle", "parse_cycle_json"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: Name
    message_indexes: list[Annotated[StrictInt, Field(ge=0)]] = []


class _ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    goal: Goal
    deployability: Deployability
    target_artifact: Annotated[str, StringConstraints(max_length=200)] | None = None
    target_field: Annotated[str, StringConstraints(max_length=500)] | None = None
    current_value: str | None = None
    proposed_value: str | None = None
    diff: str | None = None
    rationale: str | None = None
    evidence: list[_EvidenceIn] = []
    expected_impact: dict[str, int | float] = {}
    confidence: Annotated[float, Field(ge=0, le=1)] | None = None
    pattern_key: Annotated[str, StringConstraints(max_length=500)] | None = None

    @field_validator("evidence", mode="before")
    @classmethod
    def _session_ids(cls, value: Any) -> Any:
        """A bare session id stands for ``{"session_id": id}``."""
        if isinstance(value, list):
            return [{"session_id": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("expected_impact", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        for key, number in value.items() if isinstance(value, dict) else ():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(f"{key} should be a number, got {number!r:.40}")
        return value

    def fingerprint(self) -> str:
        value = self.proposed_value if self.proposed_value is not None else self.diff
        return fingerprint(self.kind, self.target_artifact, self.target_field, value)


class _CycleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: Name
    window_start: datetime | None = None
    window_end: datetime | None = None
    stats: dict[str, Any] | None = None
    proposals: list[_ProposalIn]

    @field_validator("window_start", "window_end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _window_order(self) -> _CycleIn:
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end")
        return self


@dataclass(frozen=True, slots=True)
class CycleFile:
    """A cycle read from JSON, ready for :func:`add_cycle`."""

    agent: str | None
    proposals: list[Any]
    window_start: Any = None
    window_end: Any = None
    stats: Any = None


_FILE_KEYS = frozenset({"agent", "window_start", "window_end", "stats", "proposals"})


def parse_cycle_json(
    raw: str | bytes, *, agent: str | None = None, source: str = "input"
) -> CycleFile:
    """Read a cycle from JSON: a list of proposals, or an object with ``agent``,
    ``window_start``, ``window_end``, ``stats`` and ``proposals``. ``agent`` overrides the
    file's. The values are checked by :func:`add_cycle`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{source} is not JSON ({exc}). Nothing was written.") from None
    if isinstance(data, list):
        data = {"proposals": data}
    if not isinstance(data, dict) or "proposals" not in data:
        raise InputError(
            f"{source} must hold a list of proposals or an object with a "
            '"proposals" list. Nothing was written.'
        )
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise InputError(
            f"{source} has unknown key {unknown[0]!r}; the keys are "
            f"{', '.join(sorted(_FILE_KEYS))}. Nothing was written."
        )
    agent = agent or data.get("agent")
    if agent is None:
        raise InputError(
            f'{source} names no agent: pass --agent NAME or add "agent" to the file. '
            "Nothing was written."
        )
    return CycleFile(
        agent,
        data["proposals"],
        data.get("window_start"),
        data.get("window_end"),
        data.get("stats"),
    )


def add_cycle(
    store: Store,
    agent: str | None,
    proposals: Sequence[Any],
    *,
    window_start: datetime | str | None = None,
    window_end: datetime | str | None = None,
    stats: dict[str, Any] | None = None,
    actor: str = "cli",
    now: datetime | None = None,
) -> int:
    """Store a new open cycle of ``agent`` with its proposals and return its id.

    Proposals are numbered 1..n in digest order (by goal: accuracy, capabilities, cost;
    input order within a goal) with status ``pending`` and a :func:`fingerprint`. Bad
    input raises :class:`InputError` naming the proposal and field, and writes nothing;
    so does the same change (kind, target, proposed value) twice in one cycle."""
    spec = _validate(agent, proposals, window_start, window_end, stats)
    ordered = sorted(enumerate(spec.proposals), key=lambda ip: GOALS.index(ip[1].goal))
    prints = _unique_fingerprints(ordered)
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        cycle_id = _insert_cycle(conn, spec, now)
        rows = [
            _proposal_row(item, cycle_id, number, spec.agent, prints[index], now)
            for number, (index, item) in enumerate(ordered, start=1)
        ]
        if rows:
            conn.execute(insert(proposals_table), rows)
        after = {
            "agent": spec.agent,
            "proposals": len(rows),
            "fingerprints": [r["fingerprint"] for r in rows],
        }
        record(conn, actor=actor, action="cycle.create", entity_type="cycle",
               entity_id=str(cycle_id), after=after, now=now)  # fmt: skip
    return cycle_id


def _insert_cycle(conn: Connection, spec: _CycleIn, now: datetime) -> int:
    ensure_agents(conn, {spec.agent}, now)
    values = spec.model_dump(include={"agent", "window_start", "window_end", "stats"})
    query = insert(cycles).returning(cycles.c.cycle_id)
    return int(conn.execute(query.values(**values, status="open", created_at=now)).scalar_one())


def _validate(
    agent: str | None,
    items: Sequence[Any],
    window_start: datetime | str | None,
    window_end: datetime | str | None,
    stats: dict[str, Any] | None,
) -> _CycleIn:
    data = {
        "agent": agent,
        "window_start": window_start,
        "window_end": window_end,
        "stats": stats,
        "proposals": items,
    }
    try:
        return _CycleIn.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        more = f" ({len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InputError(f"{_describe(errors[0], items)}{more}. Nothing was written.") from None


def _describe(error: ErrorDetails, items: Sequence[Any]) -> str:
    """One line for one pydantic error: which proposal, which field, what is wrong."""
    loc = list(error["loc"])
    where = "The cycle"
    if len(loc) >= 2 and loc[0] == "proposals" and isinstance(loc[1], int):
        index = loc[1]
        raw = items[index] if index < len(items) else None
        kind = raw.get("kind") if isinstance(raw, dict) else None
        kind = kind.strip()[:40] if isinstance(kind, str) else ""
        where = f"Proposal {index + 1}" + (f" ({kind})" if kind else "")
        loc = loc[2:]
    name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{where}: `{name}` is missing"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field `{name}`"
    if error["type"] == "value_error":
        return f"{where}: `{name}`: {message}" if name else f"{where}: {message}"
    if error["type"] in ("model_type", "dict_type"):
        message = "should be a JSON object"
    elif " should " in f" {message}":  # "Input should be…", "String should have…"
        message = message[message.find("should") :]
    got = repr(error["input"])
    got = got if len(got) <= 60 else got[:59] + "…"
    return f"{where}{f': `{name}`' if name else ''} {message}, got {got}"


def _unique_fingerprints(ordered: list[tuple[int, _ProposalIn]]) -> dict[int, str]:
    """Each proposal's fingerprint by input index; the same change twice is an error."""
    seen: dict[str, int] = {}
    prints: dict[int, str] = {}
    for index, item in ordered:
        digest = item.fingerprint()
        if digest in seen:
            first, second = sorted((seen[digest] + 1, index + 1))
            raise InputError(
                f"Proposals {first} and {second} are the same change (kind, target and "
                "proposed value); keep one. Nothing was written."
            )
        seen[digest] = index
        prints[index] = digest
    return prints


def _proposal_row(
    item: _ProposalIn, cycle_id: int, number: int, agent: str, digest: str, now: datetime
) -> dict[str, Any]:
    row = item.model_dump(exclude={"evidence"})
    row["evidence"] = [e.model_dump() for e in item.evidence]
    row.update(
        cycle_id=cycle_id,
        number=number,
        agent=agent,
        status="pending",
        fingerprint=digest,
        created_at=now,
        updated_at=now,
    )
    return row


def load_cycle(conn: Connection, cycle_id: int | None = None) -> tuple[Cycle, list[Proposal]]:
    """A cycle and its proposals in number order; ``None``: the latest open cycle of any
    agent. A missing cycle raises :class:`InputError`."""
    query = select(cycles)
    if cycle_id is None:
        query = query.where(cycles.c.status == "open").order_by(cycles.c.cycle_id.desc())
    else:
        query = query.where(cycles.c.cycle_id == cycle_id)
    row = conn.execute(query.limit(1)).mappings().first()
    if row is None:
        if cycle_id is None:
            raise InputError("No open cycle. Add one with `tighten proposals add FILE`.")
        raise InputError(f"No cycle {cycle_id}. Add one with `tighten proposals add FILE`.")
    cycle = _cycle(row)
    found = conn.execute(
        select(proposals_table)
        .where(proposals_table.c.cycle_id == cycle.cycle_id)
        .order_by(proposals_table.c.number, proposals_table.c.proposal_id)
    ).mappings()
    return cycle, [_proposal(r) for r in found]


def last_deployed(conn: Connection, cycle: Cycle) -> list[Proposal]:
    """The proposals deployed from the latest earlier cycle of the same agent that had
    any, in number order (for the digest's "Last time" section)."""
    earlier = (
        select(func.max(proposals_table.c.cycle_id))
        .join(cycles, cycles.c.cycle_id == proposals_table.c.cycle_id)
        .where(
            cycles.c.agent == cycle.agent,
            cycles.c.cycle_id < cycle.cycle_id,
            proposals_table.c.status == "deployed",
        )
    )
    previous = conn.execute(earlier).scalar()
    if previous is None:
        return []
    found = conn.execute(
        select(proposals_table)
        .where(proposals_table.c.cycle_id == previous, proposals_table.c.status == "deployed")
        .order_by(proposals_table.c.number, proposals_table.c.proposal_id)
    ).mappings()
    return [_proposal(r) for r in found]


def _cycle(row: Any) -> Cycle:
    return Cycle(
        cycle_id=row["cycle_id"],
        agent=row["agent"] or "",  # add_cycle always names one
        window_start=row["window_start"],
        window_end=row["window_end"],
        status=row["status"],
        stats=row["stats"] or {},
        digest=row["digest"],
        created_at=row["created_at"],
        reviewed_at=row["reviewed_at"],
    )


def _proposal(row: Any) -> Proposal:
    data = {name: row[name] for name in Proposal.__dataclass_fields__}
    data["evidence"] = tuple(
        Evidence(str(e["session_id"]), tuple(e.get("message_indexes") or ()))
        for e in row["evidence"] or ()
        if isinstance(e, dict) and e.get("session_id") is not None
    )
    data["agent"] = row["agent"] or ""
    data["expected_impact"] = row["expected_impact"] or {}
    return Proposal(**data)
