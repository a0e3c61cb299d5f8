# ruff: noqa: RUF001  (the digest is typeset: en dashes, arrows between artifact and field)
"""The digest an owner reads on a phone, in Slack or GitHub, and in an e-mail; and one item
in full. Golden files show a realistic cycle; regenerate them with
``TIGHTEN_UPDATE_GOLDEN=1`` and read the diff."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tighten.cli.context import AppContext
from tighten.cli.review import group as review_group
from tighten.proposals import Cycle, Evidence, Proposal, add_cycle
from tighten.review.digest import PART_LIMIT, LastEffect, render_digest, render_item
from tighten.store import Store

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
AT = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def make_proposal(number: int, **fields: Any) -> Proposal:
    base: dict[str, Any] = {
        "proposal_id": number,
        "cycle_id": 12,
        "number": number,
        "agent": "blog-writer",
        "kind": "add_playbook_rule",
        "goal": "accuracy",
        "target_artifact": "playbooks",
        "target_field": None,
        "current_value": None,
        "proposed_value": None,
        "diff": None,
        "rationale": None,
        "evidence": (),
        "expected_impact": {},
        "confidence": None,
        "deployability": "auto",
        "status": "pending",
        "pattern_key": None,
        "fingerprint": None,
        "created_at": AT,
        "updated_at": AT,
    }
    return Proposal(**{**base, **fields})


def make_cycle(**fields: Any) -> Cycle:
    base: dict[str, Any] = {
        "cycle_id": 12,
        "agent": "blog-writer",
        "window_start": datetime(2026, 11, 20, 6, 0, tzinfo=UTC),
        "window_end": AT,
        "status": "open",
        "stats": {"sessions": 48, "avg_cost_usd": 0.044},
        "digest": None,
        "created_at": AT,
        "reviewed_at": None,
    }
    return Cycle(**{**base, **fields})


REALISTIC = [
    make_proposal(
        1,
        target_field="write_article",
        rationale="write_article failed in 4 sessions on a pipeline timeout and the agent "
        "gave up instead of retrying once. Each time the user had to ask again, which cost "
        "another session.",
        evidence=(Evidence("wa-1107", (12, 14)), Evidence("wa-1112", (9,)), Evidence("wa-1120")),
        expected_impact={"failures_avoided": 4},
        confidence=0.8,
        diff="--- playbooks\n+++ playbooks\n@@ write_article @@\n 1. Draft the article.\n"
        "+2. If write_article times out, wait 10 seconds and call it once more.\n",
    ),
    make_proposal(
        2,
        kind="add_faq",
        target_artifact="soul",
        target_field="faqs",
        rationale="Three users asked whether a post can be scheduled for later; the agent "
        "answered that it did not know.",
        expected_impact={"questions_answered": 3},
        confidence=0.7,
    ),
    make_proposal(
        3,
        kind="tool_description",
        goal="capabilities",
        target_artifact="inject_links",
        target_field="description",
        rationale="inject_links was never called in 31 sessions that published an article "
        "with links: its description does not say when to use it.",
        expected_impact={"sessions_affected": 31},
        current_value="Injects links.",
        proposed_value="Add internal links to a finished draft. Call it before publishing "
        "any article longer than 300 words.",
    ),
    make_proposal(
        4,
        kind="model_switch",
        goal="cost",
        target_artifact="config",
        target_field="routing.model",
        rationale="Routing turns run on the large model, yet 92% of them are one-word "
        "intents that a small model classified the same way in a replay of 48 sessions.",
        expected_impact={"cost_usd_per_day": 0.42, "tokens_per_day": 12000},
        deployability="semi",
    ),
    make_proposal(
        5,
        kind="code_change",
        goal="cost",
        target_artifact="src/agent.py",
        target_field="call_model",
        rationale="The 9,000-token system prompt is sent uncached on every turn.",
        expected_impact={"tokens_per_day": 120000},
        deployability="manual",
    ),
]
LAST = [
    LastEffect(3, "Remove duplicated text — master_system_core", "cost per session −29.5%"),
    LastEffect(4, "Add playbook rule — playbooks › publish_to_ghost", None),
]


@pytest.mark.parametrize(("fmt", "name"), [("text", "txt"), ("markdown", "md"), ("html", "html")])
def test_digest_matches_golden(fmt: str, name: str) -> None:
    parts = render_digest(make_cycle(), REALISTIC, last_deployed=LAST, fmt=fmt)  # type: ignore[arg-type]
    assert len(parts) == 1
    actual = parts[0].rstrip("\n") + "\n"
    path = GOLDEN / f"digest.{name}"
    if os.environ.get("TIGHTEN_UPDATE_GOLDEN") or not path.exists():
        path.write_text(actual)
    assert actual == path.read_text(), f"the digest changed: regenerate {path.name}, read it"


def test_text_digest_reads_like_a_phone_message() -> None:
    (text,) = render_digest(make_cycle(), REALISTIC, last_deployed=LAST)
    lines = text.splitlines()
    assert lines[0] == "blog-writer — 5 proposed changes (cycle 12)"
    assert lines[1] == "Nov 20 06:00 – Nov 22 06:00 UTC · 48 sessions analysed · avg cost $0.044"
    headings = [line for line in lines if line in ("Accuracy", "Capabilities", "Cost")]
    assert headings == ["Accuracy", "Capabilities", "Cost"]
    assert "[4] Switch model — config › routing.model" in lines
    assert "needs your config change" in text
    assert "needs investigation / code" in text
    assert "saves ~$0.42/day, saves ~12,000 tokens/day" in text
    assert "- Add playbook rule — playbooks › publish_to_ghost (was #4): measuring…" in lines
    assert "Auto-deploy: 1, 2, 3 · needs you: 4, 5" in lines
    assert lines[-1] == (
        "Reply: deploy all · deploy 1 3 · remove 2, deploy · skip · show me item 2"
    )


def test_a_block_too_long_for_any_message_is_cut_not_sent_whole() -> None:
    p = make_proposal(1, target_field="😀" * 3000)  # 6,000 UTF-16 units in one target
    parts = render_digest(make_cycle(), [p], limit=500)
    assert all(len(part.encode("utf-16-le")) // 2 <= 500 for part in parts)


def test_long_rationale_is_shortened_in_the_digest_and_whole_in_the_item() -> None:
    rationale = "word " * 200 + "END"
    p = make_proposal(1, rationale=rationale)
    (text,) = render_digest(make_cycle(), [p])
    assert "END" not in text
    assert "…" in text
    assert "END" in render_item(p, "text")


def test_forty_items_split_between_items_within_the_limit() -> None:
    items = [
        make_proposal(
            n,
            goal="accuracy" if n <= 30 else "capabilities" if n <= 35 else "cost",
            target_field=f"rule_{n}",
            rationale=f"Item {n} rationale. " + "Long detail 🚀 about the sessions. " * 8,
            expected_impact={"failures_avoided": n},
        )
        for n in range(1, 41)
    ]
    for fmt in ("text", "markdown"):
        parts = render_digest(make_cycle(), items, last_deployed=LAST, fmt=fmt)  # type: ignore[arg-type]
        assert len(parts) > 1
        assert all(len(part.encode("utf-16-le")) // 2 <= PART_LIMIT for part in parts)
        assert all(part.endswith(f"({n}/{len(parts)})") for n, part in enumerate(parts, 1))
        for n in range(1, 41):
            mark = f"[{n}] " if fmt == "text" else f"- **{n}.** "
            holding = [part for part in parts if f"\n{mark}" in part]
            assert len(holding) == 1, (fmt, n)  # each item whole, in one message
            assert re.search(
                rf"{re.escape(mark)}Add playbook rule — \W*playbooks › rule_{n}\W*\n", holding[0]
            )
            assert f"Item {n} rationale." in holding[0]
        assert "Reply:" in parts[-1]
        heading = r"(### )?(Accuracy|Capabilities|Cost|Last time)( \(continued\))?\n"
        assert all(re.match(heading, part) for part in parts[1:])  # no message starts bare
        assert any(
            part.startswith(("Accuracy (continued)", "### Accuracy (continued)")) for part in parts
        )


def test_html_is_one_escaped_self_contained_document() -> None:
    evil = make_proposal(
        1,
        rationale='<script>alert("x")</script> & <img src=x onerror=alert(1)>',
        target_field='"><b>field',
        evidence=(Evidence("<s>session</s>"),),
        diff="+<iframe src=javascript:alert(1)>",
    )
    cycle = make_cycle(agent="<b>bot</b>")
    (page,) = render_digest(cycle, [evil], fmt="html")
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert "<script>" not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;" in page
    assert "&quot;&gt;&lt;b&gt;field" in page
    assert "src=" not in page.replace("src=x", "")  # nothing to load
    detail = render_item(evil, "html")
    assert "<iframe" not in detail
    assert "<script>" not in detail
    assert "<s>" not in detail
    assert "<pre>+&lt;iframe src=javascript:alert(1)&gt;</pre>" in detail


def test_markdown_neutralizes_links_html_and_backticks() -> None:
    p = make_proposal(
        1,
        rationale="Click [here](http://evil.example) ![x](http://t.example/p.png) <b>now</b>",
        target_field="a`b",
        diff="+```\n+inject\n",
    )
    (md,) = render_digest(make_cycle(), [p], fmt="markdown")
    assert "\\[here\\](http://evil.example)" in md
    assert "!\\[x\\]" in md
    assert "\\<b\\>now" in md
    assert "``playbooks › a`b``" in md
    detail = render_item(p, "markdown")
    assert "````diff\n+```\n+inject\n````" in detail  # the fence outlasts the diff's


def test_item_detail_has_rationale_evidence_and_diff() -> None:
    p = REALISTIC[0]
    text = render_item(p, "text")
    assert text.startswith("[1] Add playbook rule — playbooks › write_article\n")
    assert "accuracy · auto-deploy · confidence 0.80 · pending · ~4 failures avoided" in text
    assert "which cost another session." in text
    assert "- wa-1107 (messages 12, 14)" in text
    assert "- wa-1120\n" in text
    assert "+2. If write_article times out" in text
    md = render_item(p, "markdown")
    assert md.startswith("### 1. Add playbook rule — playbooks › write_article\n")
    assert "```diff\n--- playbooks\n" in md
    values = render_item(REALISTIC[2], "markdown")
    assert "**Current**\n\n```\nInjects links.\n```" in values
    assert "**Proposed**" in values


def test_empty_cycle_needs_no_reply() -> None:
    (text,) = render_digest(make_cycle(stats={}), [])
    assert text == (
        "blog-writer — no changes (cycle 12)\n"
        "Nov 20 06:00 – Nov 22 06:00 UTC\n\n"
        "Nothing to change this time: no reply needed."
    )


def test_reply_options_use_the_cycle_numbers() -> None:
    (one,) = render_digest(make_cycle(), REALISTIC[:1])
    assert one.endswith("Reply: deploy all · skip · show me item 1")
    (two,) = render_digest(make_cycle(), REALISTIC[:2])
    assert two.endswith("Reply: deploy all · deploy 1 · remove 2, deploy · skip · show me item 2")


def test_decided_items_show_their_status() -> None:
    (text,) = render_digest(make_cycle(), [make_proposal(1, status="deployed")])
    assert "\n    auto-deploy · deployed\n" in text


def test_review_digest_command(store: Store, database_url: str) -> None:
    add_cycle(
        store,
        "blog-writer",
        [{"kind": "add_faq", "goal": "accuracy", "deployability": "auto", "rationale": "<b>"}],
        window_start="2026-11-20T06:00:00Z",
        window_end="2026-11-22T06:00:00Z",
        stats={"sessions": 3},
    )
    app = AppContext(database_url=database_url)
    try:
        runner = CliRunner()
        result = runner.invoke(review_group, ["digest", "--format", "html", "--json"], obj=app)
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert (data["cycle_id"], data["format"]) == (1, "html")
        assert "&lt;b&gt;" in data["parts"][0]
        text = runner.invoke(review_group, ["digest"], obj=app)
        assert text.exit_code == 0
        assert text.output.startswith("blog-writer — 1 proposed change (cycle 1)\n")
        assert re.search(r"Nov 20 06:00 – Nov 22 06:00 UTC · 3 sessions analysed", text.output)
        missing = runner.invoke(review_group, ["digest", "--cycle", "99"], obj=app)
        assert missing.exit_code == 1
        assert str(missing.exception) == ("No cycle 99. Add one with `tighten proposals add FILE`.")
    finally:
        app.close()
