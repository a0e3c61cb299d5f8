"""Carrying out the owner's reply: decisions recorded with reasons, approved items
deployed through the guardrails, nothing guessed, only approvers decide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tighten import get_artifact
from tighten.config import Settings
from tighten.proposals.add import add_cycle, load_cycle
from tighten.registry.importer import import_artifacts
from tighten.review.decisions import handle_reply
from tighten.store import Store
from tighten.store.schema import audit_events, feedback

BASE = "# Refunds\n\n" + "Check the order and refund within 30 days of purchase. " * 4


def item(n: int, deployability: str, goal: str = "accuracy") -> dict[str, object]:
    return {
        "kind": "add_playbook_rule",
        "goal": goal,
        "deployability": deployability,
        "target_artifact": f"playbook{n}",
        "proposed_value": BASE + f"\nRule {n}: after two failures of refund, escalate.",
        "rationale": f"error loop on refund in {n * 3} sessions",
        "evidence": [f"s{n}"],
    }


@pytest.fixture
def cycle(store: Store, tmp_path: Path) -> int:
    """A cycle of five items; 1, 3 and 4 are auto-deployable."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    for n in range(1, 6):
        (folder / f"playbook{n}.md").write_text(BASE)
    import_artifacts(store, "bot", folder)
    kinds = {1: "auto", 2: "semi", 3: "auto", 4: "auto", 5: "manual"}
    return add_cycle(store, "bot", [item(n, kinds[n]) for n in range(1, 6)])


def statuses(store: Store, cycle_id: int) -> dict[int, str]:
    with store.connect() as conn:
        _, items = load_cycle(conn, cycle_id)
    return {p.number: p.status for p in items if p.number is not None}


def test_remove_one_then_deploy(store: Store, settings: Settings, cycle: int) -> None:
    outcome = handle_reply(store, "remove 4, deploy", cycle_id=cycle)
    assert outcome.deployed == [1, 3]
    assert statuses(store, cycle) == {
        1: "deployed",
        2: "pending",
        3: "deployed",
        4: "pending",
        5: "pending",
    }
    assert "Rule 1:" in get_artifact("bot", "playbook1", settings=settings, ttl=0)
    assert get_artifact("bot", "playbook4", settings=settings, ttl=0) == BASE


def test_skip_deploys_nothing_and_records_the_reason(
    store: Store, settings: Settings, cycle: int
) -> None:
    outcome = handle_reply(store, "skip — too risky before launch", cycle_id=cycle)
    assert outcome.deployed == []
    assert outcome.rejected == [1, 2, 3, 4, 5]
    with store.connect() as conn:
        reasons = conn.execute(select(feedback.c.decision, feedback.c.reason)).all()
    assert set(reasons) == {("reject", "too risky before launch")}
    assert len(reasons) == 5
    assert get_artifact("bot", "playbook1", settings=settings, ttl=0) == BASE
    assert set(statuses(store, cycle).values()) == {"rejected"}


def test_an_item_that_does_not_exist_is_asked_back(store: Store, cycle: int) -> None:
    outcome = handle_reply(store, "deploy 7", cycle_id=cycle)
    assert "7" in outcome.message
    assert outcome.message.rstrip().endswith("?")
    assert set(statuses(store, cycle).values()) == {"pending"}


def test_only_approvers_decide(store: Store, cycle: int) -> None:
    outcome = handle_reply(
        store, "deploy all", sender="+15550001", approvers=["+15559999"], cycle_id=cycle
    )
    assert outcome.refused_sender
    assert set(statuses(store, cycle).values()) == {"pending"}
    with store.connect() as conn:
        refused = conn.execute(
            select(audit_events).where(audit_events.c.action == "review.refused")
        ).mappings().one()  # fmt: skip
    assert refused["actor"] == "+15550001"
    ok = handle_reply(
        store, "deploy all", sender="+15559999", approvers=["+15559999"], cycle_id=cycle
    )
    assert ok.deployed == [1, 3, 4]


def test_a_failed_guardrail_skips_that_item_and_the_rest_land(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "good.md").write_text(BASE)
    (folder / "bad.md").write_text(BASE)
    import_artifacts(store, "bot", folder)
    cycle_id = add_cycle(store, "bot", [
        {**item(1, "auto"), "target_artifact": "bad", "proposed_value": "too short"},
        {**item(2, "auto"), "target_artifact": "good"},
    ])  # fmt: skip
    outcome = handle_reply(store, "deploy all", cycle_id=cycle_id)
    assert outcome.deployed == [2]
    assert "too short" in outcome.failed[1][0]
    assert statuses(store, cycle_id) == {1: "failed", 2: "deployed"}


def test_semi_and_manual_items_are_approved_not_deployed(store: Store, cycle: int) -> None:
    outcome = handle_reply(store, "deploy 2 and 5", cycle_id=cycle)
    assert outcome.deployed == []
    assert outcome.approved == [2, 5]
    assert statuses(store, cycle)[2] == "approved"


def test_show_status_and_rollback(store: Store, settings: Settings, cycle: int) -> None:
    assert "refund" in handle_reply(store, "show me item 3", cycle_id=cycle).message
    handle_reply(store, "deploy 1", cycle_id=cycle)
    assert "deployed: 1" in handle_reply(store, "status", cycle_id=cycle).message
    back = handle_reply(store, "rollback playbook1", cycle_id=cycle)
    assert "v2 → v1" in back.message
    assert get_artifact("bot", "playbook1", settings=settings, ttl=0) == BASE


def test_review_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "playbook1.md").write_text(BASE)
    cli(f"artifacts import {folder} --agent bot")
    cycle_file = tmp_path / "cycle.json"
    cycle_file.write_text(json.dumps({"agent": "bot", "proposals": [item(1, "auto")]}))
    assert cli(f"proposals add {cycle_file}").code == 0
    digest = cli("review digest")
    assert "[1]" in digest.out
    assert cli("review reply 'deploy all' --from stranger").out.startswith("Sorry")
    done = json.loads(cli("review reply 'deploy all' --json").out)
    assert done["deployed"] == [1]


def test_approved_items_deploy_to_a_git_repository(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from tighten.registry.backends.git import GitRegistry

    home = tmp_path / "git-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test User")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    repo = tmp_path / "agents"
    (repo / "bot").mkdir(parents=True)
    (repo / "bot" / "playbook1.md").write_text(BASE)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "initial")
    cycle_id = add_cycle(
        store, "bot", [item(1, "auto"), {**item(2, "auto"), "proposed_value": "short"}]
    )
    outcome = handle_reply(store, "deploy all because the loop is clear", cycle_id=cycle_id,
                           registry=GitRegistry(repo))  # fmt: skip
    assert outcome.deployed == [1]
    assert "too short" in outcome.failed[2][0]
    assert "Rule 1:" in (repo / "bot" / "playbook1.md").read_text()
    assert "the loop is clear" in git("log", "-1", "--format=%B")
    assert git("status", "--porcelain") == ""
    back = handle_reply(store, "rollback playbook1 because the tone changed", cycle_id=cycle_id,
                        registry=GitRegistry(repo))  # fmt: skip
    assert back.message.startswith("Rolled back playbook1 in git")
    assert (repo / "bot" / "playbook1.md").read_text() == BASE
    assert "the tone changed" in git("log", "-1", "--format=%B")
    assert statuses(store, cycle_id)[1] == "rolled_back"
    again = handle_reply(store, "rollback playbook1", cycle_id=cycle_id, registry=GitRegistry(repo))
    assert "no earlier production version" in again.message


def test_rollback_by_item_number_and_undo(store: Store, settings: Settings, cycle: int) -> None:
    handle_reply(store, "deploy 1 and 3", cycle_id=cycle)
    back = handle_reply(store, "rollback 3", cycle_id=cycle)
    assert back.message == "Rolled back playbook3: production v2 → v1."
    assert statuses(store, cycle)[3] == "rolled_back"
    undo = handle_reply(store, "undo last deploy", cycle_id=cycle)
    assert "playbook1" in undo.message
    assert get_artifact("bot", "playbook1", settings=settings, ttl=0) == BASE
    assert "Rule 1" in handle_reply(store, "show me item 1", cycle_id=cycle).message


def test_an_unknown_target_fails_that_item_only(store: Store, cycle: int) -> None:
    other = add_cycle(
        store, "bot", [{**item(1, "auto"), "target_artifact": "nope"}, item(2, "auto")]
    )
    outcome = handle_reply(store, "deploy all", cycle_id=other)
    assert outcome.deployed == [2]
    assert "No artifact 'nope'" in outcome.failed[1][0]


def test_the_digest_offers_replies_only_for_pending_items(store: Store, cycle: int) -> None:
    from tighten.review.digest import render_digest

    handle_reply(store, "deploy 1, reject 2 because not now", cycle_id=cycle)
    with store.connect() as conn:
        found, items = load_cycle(conn, cycle)
    footer = render_digest(found, items)[-1]
    assert "Auto-deploy: 3, 4 · needs you: 5" in footer
    handle_reply(store, "skip", cycle_id=cycle)
    with store.connect() as conn:
        found, items = load_cycle(conn, cycle)
    assert "Every item of this cycle has been decided." in render_digest(found, items)[-1]


def test_a_mixed_reply_keeps_its_reason_on_the_rejection(store: Store, cycle: int) -> None:
    handle_reply(store, "deploy 1, reject 3 because it changes the tone", cycle_id=cycle)
    with store.connect() as conn:
        rows = dict(conn.execute(select(feedback.c.decision, feedback.c.reason)).all())
    assert rows == {"approve": None, "reject": "it changes the tone"}


def test_interactive_review_in_the_terminal(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import io
    import sys

    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / "playbook1.md").write_text(BASE)
    (folder / "playbook2.md").write_text(BASE)
    cli(f"artifacts import {folder} --agent bot")
    cycle_file = tmp_path / "cycle.json"
    cycle_file.write_text(
        json.dumps({"agent": "bot", "proposals": [item(1, "auto"), item(2, "auto")]})
    )
    cli(f"proposals add {cycle_file}")
    monkeypatch.setattr(
        sys, "stdin", io.StringIO("deploy 7\nremove 2, deploy\nskip 2 because later\n")
    )
    result = cli("review")
    assert result.code == 0
    assert "[1]" in result.out  # the digest
    assert "There is no item 7" in result.out
    assert "Deployed: 1." in result.out
    assert "Nothing is pending any more in this cycle." in result.out
