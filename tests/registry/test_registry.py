"""The registry: versions, labels, guardrails, deploy and rollback, and what agents fetch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tighten import get_artifact
from tighten.config import Settings
from tighten.errors import InputError, StoreError
from tighten.registry.artifacts import deploy, find_artifact, history, rollback
from tighten.registry.importer import import_artifacts
from tighten.store import Store, open_store
from tighten.store.schema import audit_events

MASTER = "You are the support bot of Acme.\n\n{{PLAYBOOKS}}\n\n" + "Be brief and kind. " * 10
PLAYBOOK = "# Refunds\n\n" + "Check the order, then refund within 30 days of purchase. " * 4
SOUL = {"always": ["greet by name"], "never": ["promise delivery dates"],
        "faq": [{"question": "Hours?", "answer": "9-5"}]}  # fmt: skip
CONFIG = {"model": "gpt-4.1-mini", "temperature": 0.3, "max_tokens": 800}


def write_folder(root: Path) -> Path:
    root.mkdir()
    (root / "master_system_prompt.md").write_text(MASTER)
    (root / "refunds.md").write_text(PLAYBOOK)
    (root / "soul.json").write_text(json.dumps(SOUL))
    (root / "config.yaml").write_text("model: gpt-4.1-mini\ntemperature: 0.3\n")
    return root


def manifest(root: Path) -> Path:
    write_folder(root)
    (root / "tighten-artifacts.yaml").write_text(
        "artifacts:\n"
        "  - {name: master, kind: prompt, file: master_system_prompt.md,"
        " required_placeholders: ['{{PLAYBOOKS}}']}\n"
        "  - {name: refunds, file: refunds.md}\n"
        "  - {name: soul, file: soul.json, human_only: true}\n"
        "  - {name: config, file: config.yaml}\n"
    )
    return root


def test_import_a_folder_deploys_first_versions(store: Store, tmp_path: Path) -> None:
    report = import_artifacts(store, "bot", write_folder(tmp_path / "a"))
    assert sorted(report.created) == ["config", "master_system_prompt", "refunds", "soul"]
    assert report.refused == {}
    with store.connect() as conn:
        kinds = {n: find_artifact(conn, "bot", n).kind for n in report.created}
    assert kinds == {"config": "config", "master_system_prompt": "prompt",
                     "refunds": "playbook", "soul": "soul"}  # fmt: skip
    again = import_artifacts(store, "bot", tmp_path / "a")
    assert sorted(again.unchanged) == sorted(report.created)


def test_deploy_and_rollback_change_what_the_agent_fetches(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    root = manifest(tmp_path / "m")
    import_artifacts(store, "bot", root)
    assert get_artifact("bot", "master", settings=settings, ttl=0) == MASTER
    changed = MASTER.replace("Be brief", "Be very brief")
    (root / "master_system_prompt.md").write_text(changed)
    assert import_artifacts(store, "bot", root).new_versions == ["master"]
    assert get_artifact("bot", "master", settings=settings, ttl=0) == MASTER  # not deployed yet
    result = deploy(store, "bot", "master", 2, actor="owner", reason="approved item 1")
    assert (result.ok, result.from_number, result.to_number) == (True, 1, 2)
    assert get_artifact("bot", "master", settings=settings, ttl=0) == changed
    back = rollback(store, "bot", "master", actor="owner", reason="tone regressed")
    assert (back.from_number, back.to_number) == (2, 1)
    assert get_artifact("bot", "master", settings=settings, ttl=0) == MASTER
    with store.connect() as conn:
        moves = history(conn, find_artifact(conn, "bot", "master"))["moves"]
        actions = conn.execute(
            select(audit_events.c.action).where(audit_events.c.entity_id == "bot/master")
        ).scalars().all()  # fmt: skip
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(2, 1), (1, 2), (None, 1)]
    assert actions.count("label.deploy") == 2
    assert actions.count("label.rollback") == 1


def test_rolling_back_twice_goes_back_two_deploys(store: Store, tmp_path: Path) -> None:
    root = manifest(tmp_path / "m")
    import_artifacts(store, "bot", root)
    for n in (2, 3):
        (root / "refunds.md").write_text(PLAYBOOK + f"\nRule {n}: always confirm the amount.")
        import_artifacts(store, "bot", root)
        deploy(store, "bot", "refunds", n, actor="owner")
    assert rollback(store, "bot", "refunds", actor="owner").to_number == 2
    assert rollback(store, "bot", "refunds", actor="owner").to_number == 1
    with pytest.raises(InputError, match="no earlier production version"):
        rollback(store, "bot", "refunds", actor="owner")


def test_guardrails_refuse_each_bad_item_and_the_rest_land(store: Store, tmp_path: Path) -> None:
    root = manifest(tmp_path / "m")
    import_artifacts(store, "bot", root)
    (root / "master_system_prompt.md").write_text(MASTER.replace("{{PLAYBOOKS}}", ""))
    (root / "refunds.md").write_text("Refund if asked. " * 2)  # ~34 characters
    (root / "soul.json").write_text(json.dumps({"always": "greet"}))  # not a list
    (root / "config.yaml").write_text(
        "model: gpt-4.1\napi_key: sk-live0123456789abcdefghijklmnop\n"
    )
    import_artifacts(store, "bot", root)
    results = {
        n: deploy(store, "bot", n, 2, actor="owner")
        for n in ("master", "refunds", "soul", "config")
    }
    (root / "new_playbook.md").write_text(PLAYBOOK + "\nAlso: be kind.")
    assert all(not r.ok for r in results.values())
    assert "required placeholder {{PLAYBOOKS}} is missing" in results["master"].failures
    assert any("too short" in f for f in results["refunds"].failures)
    assert any("breaks its schema at always" in f for f in results["soul"].failures)
    assert any("credential" in f for f in results["config"].failures)
    fine = import_artifacts(store, "bot", root / "new_playbook.md")
    assert fine.created == ["new_playbook"]
    with store.connect() as conn:
        for name in ("master", "refunds", "soul", "config"):
            assert history(conn, find_artifact(conn, "bot", name))["moves"][0]["to_version"] == 1


def test_human_only_artifacts_refuse_automatic_deploys(store: Store, tmp_path: Path) -> None:
    root = manifest(tmp_path / "m")
    import_artifacts(store, "bot", root)
    (root / "soul.json").write_text(json.dumps({**SOUL, "style": "warm"}))
    import_artifacts(store, "bot", root)
    machine = deploy(store, "bot", "soul", 2, actor="loop", actor_is_human=False)
    assert not machine.ok
    assert "human-only" in machine.failures[0]
    assert deploy(store, "bot", "soul", 2, actor="owner").ok


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_agent_keeps_the_last_good_copy_when_the_store_is_down(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    import_artifacts(store, "bot", manifest(tmp_path / "m"))
    assert get_artifact("bot", "refunds", settings=settings, ttl=0) == PLAYBOOK
    store.close()
    db = Path(settings.resolved_database_url().split("///", 1)[1])
    for leftover in db.parent.glob(db.name + "*"):
        leftover.unlink()
    db.mkdir()  # the database can no longer be opened
    with pytest.raises(StoreError):
        open_store(settings)
    assert get_artifact("bot", "refunds", settings=settings, ttl=0) == PLAYBOOK
    never_fetched = pytest.raises(StoreError)
    with never_fetched:
        get_artifact("bot", "soul", settings=settings, ttl=0)


def test_artifacts_commands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = manifest(tmp_path / "m")
    assert cli(f"artifacts import {root} --agent bot").code == 0
    listed = json.loads(cli("artifacts list --json").out)
    assert {r["name"]: r["labels"] for r in listed}["master"] == {"production": 1}
    (root / "config.yaml").write_text("model: gpt-4.1\ntemperature: 0.5\n")
    cli(f"artifacts import {root} --agent bot")
    diff = json.loads(cli("artifacts diff config 1 2 --json").out)
    assert {"op": "change", "path": "/model", "before": "gpt-4.1-mini", "after": "gpt-4.1"} in diff[
        "changes"
    ]
    assert cli("artifacts deploy config 2 --reason 'approved'").code == 0
    assert json.loads(cli("artifacts show config --json").out)["version"] == 2
    assert cli("artifacts rollback config").code == 0
    assert json.loads(cli("artifacts show config --json").out)["version"] == 1
    refused = cli("artifacts deploy refunds 1 --label staging --agent bot --json")
    assert refused.code == 0
    history_out = json.loads(cli("artifacts history config --json").out)
    assert [m["to_version"] for m in history_out["moves"]] == [1, 2, 1]


def test_deploying_the_current_version_moves_nothing(store: Store, tmp_path: Path) -> None:
    root = manifest(tmp_path / "m")
    import_artifacts(store, "bot", root)
    (root / "refunds.md").write_text(PLAYBOOK + "\nNew rule.")
    import_artifacts(store, "bot", root)
    deploy(store, "bot", "refunds", 2, actor="owner")
    again = deploy(store, "bot", "refunds", 2, actor="owner")
    assert (again.ok, again.from_number, again.to_number) == (True, 2, 2)
    assert rollback(store, "bot", "refunds", actor="owner").to_number == 1
    with store.connect() as conn:
        moves = history(conn, find_artifact(conn, "bot", "refunds"))["moves"]
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(2, 1), (1, 2), (None, 1)]
    assert moves[0]["moved_at"].tzinfo is not None
