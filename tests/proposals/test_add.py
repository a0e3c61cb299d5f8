# ruff: noqa: RUF001  (the digest is typeset: en dashes, arrows between artifact and field)
"""Adding a cycle of proposals: validated whole before anything is written, numbered in
digest order, fingerprinted, audited; and read back."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from tighten.cli.context import AppContext
from tighten.cli.proposals import group as proposals_group
from tighten.errors import InputError
from tighten.proposals import (
    Evidence,
    add_cycle,
    describe_impact,
    fingerprint,
    last_deployed,
    load_cycle,
    parse_cycle_json,
)
from tighten.store import Store
from tighten.store.schema import agents, audit_events, cycles, proposals

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def item(**fields: Any) -> dict[str, Any]:
    return {"kind": "add_faq", "goal": "accuracy", "deployability": "auto", **fields}


THREE = [
    item(
        kind="model_switch",
        goal="cost",
        deployability="semi",
        target_artifact="config",
        target_field="model",
        proposed_value="small",
        expected_impact={"cost_usd_per_day": 0.42},
    ),
    item(
        kind="tool_description",
        goal="capabilities",
        target_artifact="inject_links",
        target_field="description",
        proposed_value="Add internal links.",
    ),
    item(
        target_artifact="soul",
        target_field="faqs",
        proposed_value="Q: Can I schedule a post? A: Yes.",
        rationale="Three users asked.",
        evidence=["wa-1", {"session_id": "wa-2", "message_indexes": [3, 5]}],
        expected_impact={"questions_answered": 3},
        confidence=0.7,
        pattern_key="unanswered_question:scheduling",
    ),
]


def count(store: Store, table: Any) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_cycle_is_stored_open_with_proposals_numbered_by_goal(store: Store) -> None:
    cycle_id = add_cycle(
        store,
        "blog-writer",
        THREE,
        window_start="2026-11-20T06:00:00Z",
        window_end=datetime(2026, 11, 22, 6, 0),  # naive: UTC
        stats={"sessions": 48, "avg_cost_usd": 0.044},
        actor="optimizer",
        now=NOW,
    )
    with store.connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
    assert (cycle.agent, cycle.status, cycle.created_at) == ("blog-writer", "open", NOW)
    assert cycle.window_text == "Nov 20 06:00 – Nov 22 06:00 UTC"
    assert cycle.stats == {"sessions": 48, "avg_cost_usd": 0.044}
    assert [(p.number, p.goal, p.kind) for p in items] == [
        (1, "accuracy", "add_faq"),
        (2, "capabilities", "tool_description"),
        (3, "cost", "model_switch"),
    ]
    faq = items[0]
    assert faq.status == "pending"
    assert faq.agent == "blog-writer"
    assert faq.cycle_id == cycle_id
    assert faq.evidence == (Evidence("wa-1"), Evidence("wa-2", (3, 5)))
    assert faq.expected_impact == {"questions_answered": 3}
    assert (faq.confidence, faq.pattern_key) == (0.7, "unanswered_question:scheduling")
    assert faq.headline == "Add FAQ — soul › faqs"
    expected = json.dumps(["add_faq", "soul", "faqs", "Q: Can I schedule a post? A: Yes."])
    assert faq.fingerprint == hashlib.sha256(expected.encode()).hexdigest()
    assert count(store, agents) == 1
    with store.connect() as conn:
        event = conn.execute(select(audit_events)).mappings().one()
    assert (event["actor"], event["action"], event["entity_type"]) == (
        "optimizer",
        "cycle.create",
        "cycle",
    )
    assert event["entity_id"] == str(cycle_id)
    assert event["after"]["proposals"] == 3
    assert event["after"]["fingerprints"] == [p.fingerprint for p in items]


def test_fingerprint_names_the_change_not_its_reasons() -> None:
    one = fingerprint("add_faq", "soul", "faqs", "Q? A.")
    assert one == fingerprint("add_faq", "soul", "faqs", "Q? A.")
    assert one != fingerprint("add_faq", "soul", "faqs", "Q? B.")
    assert one != fingerprint("add_faq", "soul", "rules", "Q? A.")
    assert fingerprint("a", "b c", None, None) != fingerprint("a", "b", "c", None)


def test_a_proposal_without_a_value_is_fingerprinted_by_its_diff(store: Store) -> None:
    cycle_id = add_cycle(store, "bot", [item(diff="+x"), item(diff="+y")], now=NOW)
    with store.connect() as conn:
        _, items = load_cycle(conn, cycle_id)
    assert items[0].fingerprint == fingerprint("add_faq", None, None, "+x")
    assert items[0].fingerprint != items[1].fingerprint


def test_latest_open_cycle_of_any_agent_is_the_default(store: Store) -> None:
    first = add_cycle(store, "a", [item()], now=NOW)
    second = add_cycle(store, "b", [item()], now=NOW)
    with store.connect() as conn:
        assert load_cycle(conn)[0].cycle_id == second
    with store.begin() as conn:
        conn.execute(update(cycles).where(cycles.c.cycle_id == second).values(status="skipped"))
    with store.connect() as conn:
        assert load_cycle(conn)[0].cycle_id == first
        assert load_cycle(conn, second)[0].status == "skipped"
        with pytest.raises(InputError, match=r"^No cycle 99\. Add one with"):
            load_cycle(conn, 99)
    with store.begin() as conn:
        conn.execute(update(cycles).values(status="reviewed"))
    with store.connect() as conn, pytest.raises(InputError, match=r"^No open cycle\."):
        load_cycle(conn)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [item(), {"goal": "cost", "deployability": "auto"}],
            "Proposal 2: `kind` is missing. Nothing was written.",
        ),
        (
            [item(), item(kind="add_playbook_rule", deployability="maybe")],
            "Proposal 2 (add_playbook_rule): `deployability` should be 'auto', 'semi' or "
            "'manual', got 'maybe'. Nothing was written.",
        ),
        (
            [item(goal="speed")],
            "Proposal 1 (add_faq): `goal` should be 'accuracy', 'capabilities' or 'cost', "
            "got 'speed'. Nothing was written.",
        ),
        (
            [item(), item(), item(confidence=2)],
            "Proposal 3 (add_faq): `confidence` should be less than or equal to 1, got 2. "
            "Nothing was written.",
        ),
        (
            [item(evidence=[{"session_id": "s", "message_indexes": ["x"]}])],
            "Proposal 1 (add_faq): `evidence[0].message_indexes[0]` should be a valid "
            "integer, got 'x'. Nothing was written.",
        ),
        (
            [item(expected_impact={"tokens_per_day": "lots"})],
            "Proposal 1 (add_faq): `expected_impact`: tokens_per_day should be a number, "
            "got 'lots'. Nothing was written.",
        ),
        ([item(rationel="typo")], "Proposal 1 (add_faq): unknown field `rationel`."),
        ([item(), "add_faq"], "Proposal 2 should be a JSON object, got 'add_faq'."),
        ([item(kind="  ")], "Proposal 1: `kind` should have at least 1 character"),
        ([item(), item()], "Proposals 1 and 2 are the same change"),
    ],
)
def test_bad_input_names_the_proposal_and_writes_nothing(
    store: Store, items: list[Any], message: str
) -> None:
    with pytest.raises(InputError) as raised:
        add_cycle(store, "blog-writer", items, now=NOW)
    assert str(raised.value).startswith(message.removesuffix(" Nothing was written."))
    assert str(raised.value).endswith("Nothing was written.")
    assert "\n" not in str(raised.value)
    for table in (cycles, proposals, audit_events, agents):
        assert count(store, table) == 0


def test_bad_cycle_fields_are_named(store: Store) -> None:
    with pytest.raises(InputError, match=r"^The cycle: `agent` should be a valid string"):
        add_cycle(store, None, [item()])
    with pytest.raises(InputError, match=r"^The cycle: window_start must be before window_end"):
        add_cycle(store, "a", [item()], window_start="2026-11-22", window_end="2026-11-20")
    with pytest.raises(InputError, match=r"^The cycle: `proposals` should be a valid list"):
        add_cycle(store, "a", {"kind": "x"})  # type: ignore[arg-type]
    assert count(store, cycles) == 0


def test_an_empty_cycle_is_a_cycle(store: Store) -> None:
    cycle_id = add_cycle(store, "quiet-bot", [], now=NOW)
    with store.connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
    assert (cycle.status, items) == ("open", [])


def test_cycle_json_is_a_list_or_an_object() -> None:
    spec = parse_cycle_json(b'[{"kind": "x"}]', agent="bot")
    assert (spec.agent, spec.proposals) == ("bot", [{"kind": "x"}])
    spec = parse_cycle_json('{"agent": "a", "stats": {"sessions": 2}, "proposals": []}')
    assert (spec.agent, spec.stats) == ("a", {"sessions": 2})
    assert parse_cycle_json('{"agent": "a", "proposals": []}', agent="b").agent == "b"
    with pytest.raises(InputError, match=r"^cycle\.json is not JSON \(.*\)\. Nothing was written"):
        parse_cycle_json(b"{not json", source="cycle.json")
    with pytest.raises(InputError, match="names no agent: pass --agent NAME"):
        parse_cycle_json(b"[]")
    with pytest.raises(InputError, match="must hold a list of proposals"):
        parse_cycle_json(b'{"agent": "a"}')
    with pytest.raises(InputError, match="unknown key 'window'"):
        parse_cycle_json(b'{"agent": "a", "proposals": [], "window": 1}')


def test_last_deployed_comes_from_the_latest_earlier_cycle_that_deployed(store: Store) -> None:
    old = add_cycle(store, "bot", [item(proposed_value="1"), item(proposed_value="2")], now=NOW)
    skipped = add_cycle(store, "bot", [item(proposed_value="3")], now=NOW)
    other = add_cycle(store, "other-bot", [item(proposed_value="4")], now=NOW)
    current = add_cycle(store, "bot", [item(proposed_value="5")], now=NOW)
    with store.begin() as conn:
        deployed = proposals.c.cycle_id.in_([old, other]) & (proposals.c.number == 2) | (
            proposals.c.cycle_id == other
        )
        conn.execute(update(proposals).where(deployed).values(status="deployed"))
        conn.execute(update(cycles).where(cycles.c.cycle_id == skipped).values(status="skipped"))
    with store.connect() as conn:
        cycle, _ = load_cycle(conn, current)
        found = last_deployed(conn, cycle)
        assert [(p.cycle_id, p.number, p.proposed_value) for p in found] == [(old, 2, "2")]
        assert last_deployed(conn, load_cycle(conn, old)[0]) == []


def test_impact_reads_as_words() -> None:
    assert describe_impact({"tokens_per_day": 12000, "failures_avoided": 3}) == (
        "saves ~12,000 tokens/day, ~3 failures avoided"
    )
    assert describe_impact({"tokens_per_day": -500}) == "costs ~500 more tokens/day"
    assert describe_impact({"success_rate": 0.05, "p95_latency_ms": -120.0}) == (
        "success rate +0.05, p95 latency ms -120"
    )


def test_cli_adds_from_a_file_and_lists(store: Store, database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "cycle.json"
    path.write_text(json.dumps({"agent": "blog-writer", "proposals": THREE}))
    app = AppContext(database_url=database_url)
    runner = CliRunner()
    try:
        added = runner.invoke(proposals_group, ["add", str(path), "--json"], obj=app)
        assert added.exit_code == 0, added.output
        data = json.loads(added.output)
        assert data["cycle"]["status"] == "open"
        assert [p["number"] for p in data["proposals"]] == [1, 2, 3]
        assert data["proposals"][0]["evidence"][1] == {
            "session_id": "wa-2",
            "message_indexes": [3, 5],
        }
        listed = runner.invoke(proposals_group, ["list"], obj=app, env={"COLUMNS": "200"})
        assert listed.exit_code == 0
        assert "Add FAQ — soul › faqs" in listed.output
        assert "saves ~$0.42/day" in listed.output
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps([item(deployability="maybe")]))
        refused = runner.invoke(proposals_group, ["add", str(bad), "--agent", "x"], obj=app)
        assert refused.exit_code == 1
        assert isinstance(refused.exception, InputError)
        assert "Proposal 1 (add_faq): `deployability`" in str(refused.exception)
        missing = runner.invoke(proposals_group, ["add", str(tmp_path / "no.json")], obj=app)
        assert str(missing.exception) == f"No such file: {tmp_path / 'no.json'}. Check the path."
        stdin = runner.invoke(proposals_group, ["add", "-", "--agent", "bot"], input="[]", obj=app)
        assert stdin.exit_code == 0
        assert "Cycle 2 for bot: 0 proposals." in stdin.output
    finally:
        app.close()
    assert count(store, cycles) == 2
