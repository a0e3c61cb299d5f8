"""Rule detectors that compare a session with the agent's usual (spikes, delight), judge
its output (quality), its capabilities (media, unused tools), its prompt (duplicated and
unused blocks), and friction that rose after a new version (regression)."""

from __future__ import annotations

import gzip
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.conftest import EXAMPLE
from tighten.signals.detectors.capability import UnhandledMedia, UnusedTool
from tighten.signals.detectors.delight import EfficientFinish, FirstTrySuccess
from tighten.signals.detectors.prompt_waste import (
    PromptDuplication,
    UnusedPromptBlock,
    analyse,
    estimate_tokens,
)
from tighten.signals.detectors.quality import QualityRejection, is_qa_tool
from tighten.signals.detectors.regression import Regression, two_proportion_p
from tighten.signals.detectors.spikes import CostSpike, LatencySpike, LongSession, Timeout
from tighten.signals.model import (
    Baseline,
    DetectContext,
    Detector,
    SessionData,
    Signal,
    WindowSignal,
)
from tighten.traces.formats.base import ReadContext
from tighten.traces.formats.jsonl import parse_session

NOW = datetime(2026, 11, 1, tzinfo=UTC)
Msg = dict[str, Any]


def user(text: str, **extra: Any) -> Msg:
    return {"role": "user", "content": text, **extra}


def assistant(text: str = "", *calls: tuple[str, str, str]) -> Msg:
    msg: Msg = {"role": "assistant", "content": text}
    if calls:
        msg["tool_calls"] = [{"id": i, "name": n, "arguments": a} for i, n, a in calls]
    return msg


def tool(call_id: str, name: str, text: str, **extra: Any) -> Msg:
    return {"role": "tool", "content": text, "tool_call_id": call_id, "name": name, **extra}


def baseline(values: list[float]) -> Baseline:
    found = Baseline.of(values)
    assert found is not None
    return found


def context(**baselines: list[float]) -> DetectContext:
    return DetectContext(
        now=NOW, baselines={("agent", None, m): baseline(v) for m, v in baselines.items()}
    )


def spread(center: float, n: int = 40) -> list[float]:
    """``n`` values around ``center`` (±20%), a realistic baseline."""
    return [center * (0.8 + 0.4 * i / (n - 1)) for i in range(n)]


def chat(turns: int) -> list[Msg]:
    out: list[Msg] = []
    for i in range(turns):
        out += [user(f"question {i}"), assistant(f"answer {i}")]
    return out


def assert_well_formed(signal: Signal | WindowSignal) -> None:
    assert 0.0 <= signal.severity <= 1.0
    assert 0.0 <= signal.confidence <= 1.0
    assert signal.detector.startswith("rules.")
    assert signal.description
    assert signal.target


# --- spikes ---------------------------------------------------------------------------


def test_cost_spike_fires_far_above_the_agent_median() -> None:
    session = SessionData.from_messages(chat(2), cost_usd=1.0)
    [signal] = CostSpike().detect(session, context(cost_usd=spread(0.1)))
    assert_well_formed(signal)
    assert (signal.type, signal.target) == ("cost_spike", "cost_usd")
    assert "$1.00" in signal.description
    assert "10.0x" in signal.description


def test_no_spike_without_a_baseline_or_with_too_few_sessions() -> None:
    session = SessionData.from_messages(chat(2), cost_usd=1.0)
    assert list(CostSpike().detect(session, context())) == []
    assert list(CostSpike().detect(session, context(cost_usd=spread(0.1, n=19)))) == []


def test_spike_needs_a_relative_excess_not_only_a_high_z() -> None:
    # Nearly identical sessions: a tiny spread makes z large for a small difference.
    tight = [1.0] * 30 + [1.01] * 10
    session = SessionData.from_messages(chat(2), cost_usd=1.4)
    assert list(CostSpike().detect(session, context(cost_usd=tight))) == []


def test_cost_spike_falls_back_to_tokens_when_costs_are_unknown() -> None:
    session = SessionData.from_messages(chat(2), total_tokens=90_000)
    [signal] = CostSpike().detect(session, context(total_tokens=spread(10_000)))
    assert signal.target == "total_tokens"
    assert "90,000 tokens" in signal.description


def test_severity_grows_with_the_z_score() -> None:
    ctx = context(cost_usd=spread(0.1))
    low, high = (
        next(iter(CostSpike().detect(SessionData.from_messages(chat(1), cost_usd=c), ctx)))
        for c in (0.3, 3.0)
    )
    assert low.severity < high.severity


def test_latency_spike_on_session_duration_and_on_tool_latency() -> None:
    messages = [
        user("find it"),
        assistant("", ("c1", "search", "{}")),
        tool("c1", "search", "[]", latency_ms=9000),
        assistant("nothing found"),
    ]
    session = SessionData.from_messages(
        messages, started_at=NOW, ended_at=NOW + timedelta(seconds=600)
    )
    ctx = context(duration_s=spread(60))
    ctx.baselines[("agent", None, "tool_latency_ms:search")] = baseline(spread(800))
    signals = {s.target: s for s in LatencySpike().detect(session, ctx)}
    assert set(signals) == {"duration_s", "search"}
    assert signals["search"].evidence == (1,)
    assert "9,000 ms" in signals["search"].description


def test_long_session_counts_messages_with_an_absolute_floor() -> None:
    ctx = context(messages=spread(3), tool_calls=spread(1))
    [signal] = LongSession().detect(SessionData.from_messages(chat(20)), ctx)
    assert (signal.type, signal.target) == ("long_session", "messages")
    # 6 messages against a median of 3 is no "long session", whatever the z-score.
    assert list(LongSession().detect(SessionData.from_messages(chat(3)), ctx)) == []


def test_timeout_from_a_tool_result_that_timed_out() -> None:
    messages = [
        user("fetch the page"),
        assistant("", ("c1", "fetch", '{"url": "x"}')),
        tool("c1", "fetch", "Error: request timed out after 30s"),
        assistant("", ("c2", "fetch", '{"url": "x"}')),
        tool("c2", "fetch", "HTTP 504 Gateway Timeout"),
        assistant("", ("c3", "config", "{}")),
        tool("c3", "config", '{"timeout": 30, "retries": 2}'),
        assistant("sorry, the site does not answer"),
    ]
    [signal] = Timeout().detect(SessionData.from_messages(messages), context())
    assert_well_formed(signal)
    assert (signal.type, signal.target, signal.evidence) == ("timeout", "fetch", (1, 3))
    assert "2 times" in signal.description


def test_timeout_when_the_session_ends_with_a_pending_call() -> None:
    messages = [
        user("deploy it"),
        assistant("", ("c1", "build", "{}")),
        tool("c1", "build", "ok"),
        assistant("deploying now", ("c2", "deploy", "{}")),
    ]
    [signal] = Timeout().detect(SessionData.from_messages(messages), context())
    assert (signal.target, signal.evidence) == ("deploy", (3,))
    # A trace that records no tool results at all says nothing about pending calls.
    assert list(Timeout().detect(SessionData.from_messages(messages[:2]), context())) == []


# --- quality --------------------------------------------------------------------------


def test_qa_tool_rejection() -> None:
    messages = [
        user("write the post"),
        assistant("", ("c1", "review_draft", '{"draft": "..."}')),
        tool("c1", "review_draft", '{"approved": false, "comments": "too long"}'),
        assistant("", ("c2", "check_availability", "{}")),
        tool("c2", "check_availability", "failed: no rooms left"),
    ]
    [signal] = QualityRejection().detect(SessionData.from_messages(messages), context())
    assert_well_formed(signal)
    assert (signal.type, signal.target, signal.evidence) == (
        "quality_rejection",
        "review_draft",
        (1,),
    )
    assert signal.severity == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run_tests", True),
        ("qa_review", True),
        ("lint", True),
        ("check_grammar", True),
        ("validateOutput", True),
        ("check_availability", False),
        ("verify_user_identity", False),
        ("get_latest_news", False),
    ],
)
def test_qa_tool_names(name: str, expected: bool) -> None:
    assert is_qa_tool(name) is expected


@pytest.mark.parametrize(
    "result",
    [
        '{"score": 0.4, "threshold": 0.7}',
        "score: 3/10",
        "Verdict: REJECTED - the summary invents a date",
        '{"status": "fail", "issues": 3}',
    ],
)
def test_qa_verdicts_that_reject(result: str) -> None:
    messages = [assistant("", ("c1", "grade_answer", "{}")), tool("c1", "grade_answer", result)]
    assert len(list(QualityRejection().detect(SessionData.from_messages(messages), context())))


@pytest.mark.parametrize(
    "result",
    ['{"score": 0.9, "threshold": 0.7}', "12 passed, 0 failed", '{"approved": true}'],
)
def test_qa_verdicts_that_pass(result: str) -> None:
    messages = [assistant("", ("c1", "grade_answer", "{}")), tool("c1", "grade_answer", result)]
    assert list(QualityRejection().detect(SessionData.from_messages(messages), context())) == []


def test_failing_tests_then_passing_is_a_milder_rejection() -> None:
    fail = "<returncode>1</returncode>\n===== 1 failed, 3 passed in 0.12s ====="
    messages = [
        user("fix the bug"),
        assistant("", ("c1", "bash", '{"command": "python -m pytest -q tests"}')),
        tool("c1", "bash", fail),
        assistant("", ("c2", "bash", '{"command": "python -m pytest -q tests"}')),
        tool("c2", "bash", "<returncode>0</returncode>\n4 passed in 0.1s"),
    ]
    [signal] = QualityRejection().detect(SessionData.from_messages(messages), context())
    assert signal.target == "pytest"
    assert signal.severity == pytest.approx(0.4)
    assert "later run passed" in signal.description
    [still_failing] = QualityRejection().detect(SessionData.from_messages(messages[:3]), context())
    assert still_failing.severity == pytest.approx(0.7)


def test_non_zero_return_code_after_a_test_command() -> None:
    messages = [
        assistant("", ("c1", "shell", '{"cmd": "npm run test"}')),
        tool("c1", "shell", "<returncode>1</returncode>\n<output>Tests: 2 failed</output>"),
        assistant("", ("c2", "shell", '{"cmd": "ls"}')),
        tool("c2", "shell", "<returncode>1</returncode>"),
    ]
    [signal] = QualityRejection().detect(SessionData.from_messages(messages), context())
    assert signal.target == "npm test"


def test_test_output_fed_back_as_a_user_observation() -> None:
    messages = [
        user("Fix the failing test in utils.py"),
        assistant("Let me run the tests.\n```bash\ncd /repo && pytest -q\n```"),
        user("<returncode>1</returncode>\n<output>FAILED tests/test_utils.py::test_x</output>"),
    ]
    [signal] = QualityRejection().detect(SessionData.from_messages(messages), context())
    assert (signal.target, signal.evidence) == ("pytest", (2,))


def test_user_and_reviewer_rejections() -> None:
    messages = [
        user("Draft a tweet about our launch; my last draft was rejected"),
        assistant("Here it is: ..."),
        user("No, this is wrong. Try again."),
        assistant("Here is another one: ..."),
        {"role": "assistant", "name": "reviewer", "content": "Not approved: off-brand tone."},
        user("👎"),
    ]
    signals = {
        s.target: s
        for s in QualityRejection().detect(SessionData.from_messages(messages), context())
    }
    assert set(signals) == {"user", "reviewer"}
    assert signals["user"].evidence == (2, 5)
    assert signals["reviewer"].evidence == (4,)


def test_try_again_said_about_oneself_is_no_rejection() -> None:
    messages = [
        user("book a table"),
        assistant("The line is busy."),
        user("OK, I'll try again later, thanks"),
    ]
    assert list(QualityRejection().detect(SessionData.from_messages(messages), context())) == []


# --- capability -----------------------------------------------------------------------


def test_media_the_agent_cannot_see() -> None:
    messages = [
        user("what is wrong in this screenshot?", media=["image/png"]),
        assistant("I'm sorry, but I can't view images. Could you describe the error?"),
    ]
    [signal] = UnhandledMedia().detect(SessionData.from_messages(messages), context())
    assert_well_formed(signal)
    assert (signal.type, signal.target, signal.evidence) == ("unhandled_media", "image", (0, 1))
    assert signal.severity == pytest.approx(0.7)


def test_media_ignored_with_a_generic_reply() -> None:
    messages = [user("", media=["audio"]), assistant("Hi! How can I help you today?")]
    [signal] = UnhandledMedia().detect(SessionData.from_messages(messages), context())
    assert (signal.target, signal.severity) == ("audio", 0.5)


def test_media_that_was_handled() -> None:
    described = [
        user("what breed is this?", media=["image/jpeg"]),
        assistant("That looks like a border collie: the black and white coat gives it away."),
    ]
    transcribed = [
        user("", media=["audio"]),
        assistant("", ("c1", "transcribe", "{}")),
        tool("c1", "transcribe", "book me a table for two"),
        assistant("How can I help you with the table for two?"),
    ]
    for messages in (described, transcribed):
        assert list(UnhandledMedia().detect(SessionData.from_messages(messages), context())) == []


TOOLS = [
    {"name": "search_web", "description": "Search the web for pages about a topic."},
    {"name": "inject_links", "description": "Insert internal links to the blog's own posts."},
    {"name": "publish_post", "description": "Publish a finished post to the blog."},
]


def blog_session(i: int, request: str, calls: tuple[str, ...] = ("search_web",)) -> SessionData:
    messages: list[Msg] = [user(request)]
    for n, name in enumerate(calls):
        messages += [assistant("", (f"c{n}", name, "{}")), tool(f"c{n}", name, "ok")]
    messages.append(assistant("done"))
    return SessionData.from_messages(messages, session_id=f"s{i}", tools=TOOLS)


def test_unused_tool_that_users_asked_for() -> None:
    sessions = [blog_session(i, "write a post about tomatoes") for i in range(20)]
    sessions += [
        blog_session(20 + i, "write about soil and add internal links to my other posts")
        for i in range(4)
    ]
    [signal] = UnusedTool().detect_window("agent", sessions, {}, context())
    assert_well_formed(signal)
    assert (signal.type, signal.target, signal.agent) == ("unused_tool", "inject_links", "agent")
    assert signal.sessions == ("s20", "s21", "s22", "s23")
    assert signal.description == (
        "tool inject_links was never called in 24 sessions; 4 asked for something it does"
    )


def test_unused_tool_without_relevant_requests_or_with_calls_is_quiet() -> None:
    plain = [blog_session(i, "write a post about tomatoes") for i in range(30)]
    assert list(UnusedTool().detect_window("agent", plain, {}, context())) == []
    used = [*plain, blog_session(99, "add links", calls=("inject_links", "publish_post"))]
    asked = used + [blog_session(100 + i, "add internal links to posts") for i in range(5)]
    assert list(UnusedTool().detect_window("agent", asked, {}, context())) == []


# --- prompt waste ---------------------------------------------------------------------

RULES = (
    "Before you change a booking, list every detail of the change, the new price and the "
    "payment method, and wait until the customer has explicitly confirmed with a yes. Never "
    "charge a card that is not already stored in the customer's profile, and never split a "
    "payment over more than three gift cards."
)
REFUND = """## Refunds and compensation

- Compensation vouchers are offered only to gold or platinum members whose journey was
  disrupted by a cancellation on our side, after checking the disruption in the log.
- The voucher amount is one hundred dollars per traveller for a cancellation and fifty
  dollars per traveller for a delay longer than three hours; never offer it proactively.
- Refunds go back to the original payment instrument within seven working days; vouchers
  cannot be converted into cash, merged, or transferred to another account holder.
- Travellers who bought the insurance add-on get a full refund for illness or severe
  weather, provided the claim arrives before departure with supporting paperwork.
- Escalate disputes about chargebacks to the finance desk instead of arguing; mention the
  reference number the bank gave the traveller so the desk can trace the transaction.
"""


def prompt(date: str, body: str) -> Msg:
    return {"role": "system", "content": f"# Travel agent\n\nToday is {date}.\n\n{body}"}


def test_duplicated_prompt_block_and_its_waste() -> None:
    body = f"## Booking\n\n{RULES}\n\n## Reminder\n\n{RULES}\n"
    sessions = [
        SessionData.from_messages([prompt(date, body), *chat(3)])
        for date in ("2026-10-01", "2026-10-02")
    ]
    first, second = (list(PromptDuplication().detect(s, context())) for s in sessions)
    assert len(first) == 1
    [signal] = first
    assert_well_formed(signal)
    assert signal.type == "prompt_duplication"
    assert signal.target == "before-you-change-a-booking-list"
    assert signal.target == second[0].target  # stable across sessions
    assert f"~{estimate_tokens(RULES) * 3:,} over 3 turns" in signal.description
    assert signal.confidence == pytest.approx(0.95)


def test_duplicate_across_system_messages_and_near_duplicates() -> None:
    playbook = {"role": "system", "content": RULES}
    across = SessionData.from_messages([prompt("today", RULES), playbook, *chat(1)])
    [signal] = PromptDuplication().detect(across, context())
    assert signal.evidence == (0, 1)
    near = REFUND.replace("seven working days", "ten working days")
    session = SessionData.from_messages([prompt("today", f"{REFUND}\n{near}"), *chat(1)])
    [signal] = PromptDuplication().detect(session, context())
    assert signal.confidence == pytest.approx(0.8)
    assert signal.target == "refunds-and-compensation-compensation-vouchers-are"
    assert "near-duplicate" in signal.description


def test_short_duplicates_are_below_the_floor() -> None:
    short = "Always answer in English and keep answers under five sentences."
    session = SessionData.from_messages([prompt("today", f"{short}\n\n{short}"), *chat(2)])
    assert list(PromptDuplication().detect(session, context())) == []


def test_unused_prompt_block() -> None:
    system = prompt("today", f"## Booking\n\n{RULES}\n\n{REFUND}")
    unrelated = SessionData.from_messages(
        [system, user("Can you book me on the 9am train to Lyon?"), assistant("Booked.")]
    )
    [signal] = UnusedPromptBlock().detect(unrelated, context())
    assert_well_formed(signal)
    assert (signal.type, signal.target) == (
        "unused_prompt_block",
        "refunds-and-compensation-compensation-vouchers-are",
    )
    assert signal.evidence == (0,)
    related = SessionData.from_messages(
        [system, user("My train was cancelled, can I get a voucher?"), assistant("Let me see.")]
    )
    assert list(UnusedPromptBlock().detect(related, context())) == []
    in_tool = SessionData.from_messages(
        [
            system,
            user("what happened to my booking?"),
            assistant("", ("c1", "get_booking", "{}")),
            tool("c1", "get_booking", '{"status": "disrupted", "insurance": true}'),
        ]
    )
    assert list(UnusedPromptBlock().detect(in_tool, context())) == []


def test_small_prompt_blocks_are_never_unused() -> None:
    session = SessionData.from_messages(
        [prompt("today", f"## Booking\n\n{RULES}\n\n## Pets\n\nNo pets on board."), *chat(2)]
    )
    assert list(UnusedPromptBlock().detect(session, context())) == []


def test_prompt_analysis_is_cached_per_prompt() -> None:
    text = f"# Agent\n\nToday is 2026-10-01.\n\n{REFUND}"
    assert analyse((text,)) is analyse((text,))
    # A prompt that differs only in digits shares the analysis.
    assert analyse((text.replace("01", "02"),)) is analyse((text,))


# --- delight --------------------------------------------------------------------------


def finish(last_user: str, final: str) -> SessionData:
    messages = [
        user("please move my meeting to 3pm"),
        assistant("", ("c1", "update_event", '{"time": "15:00"}')),
        tool("c1", "update_event", '{"ok": true}'),
        assistant(final),
        user(last_user),
    ]
    return SessionData.from_messages(messages)


def test_efficient_finish() -> None:
    ctx = context(messages=spread(20), tool_calls=spread(4))
    [signal] = EfficientFinish().detect(
        finish("great", "Done: your meeting is updated to 3pm."), ctx
    )
    assert_well_formed(signal)
    assert (signal.type, signal.polarity, signal.evidence) == ("efficient_finish", "delight", (3,))
    assert signal.severity >= 0.4


@pytest.mark.parametrize(
    ("last_user", "final"),
    [
        ("this is useless, forget it", "Done: your meeting is updated to 3pm."),
        ("ok", "I'm sorry, I can't change that meeting."),
        ("ok", "Which meeting do you mean?"),
    ],
)
def test_short_sessions_that_did_not_finish_well_are_no_delight(last_user: str, final: str) -> None:
    ctx = context(messages=spread(20), tool_calls=spread(4))
    assert list(EfficientFinish().detect(finish(last_user, final), ctx)) == []


def test_efficient_finish_needs_a_baseline_and_no_tool_errors() -> None:
    session = finish("thanks", "Done: your meeting is updated to 3pm.")
    assert list(EfficientFinish().detect(session, context())) == []
    session.messages[2]["content"] = "Error: calendar locked"
    ctx = context(messages=spread(20), tool_calls=spread(4))
    assert list(EfficientFinish().detect(SessionData.from_messages(session.messages), ctx)) == []


def test_first_try_success_of_a_tool_that_usually_fails() -> None:
    ctx = DetectContext(
        now=NOW, tool_failure_rates={("agent", "deploy"): 0.5, ("agent", "ls"): 0.1}
    )
    ok = [
        assistant("", ("c1", "deploy", "{}")),
        tool("c1", "deploy", "deployed v3"),
        assistant("", ("c2", "ls", "{}")),
        tool("c2", "ls", "a b"),
    ]
    [signal] = FirstTrySuccess().detect(SessionData.from_messages(ok), ctx)
    assert_well_formed(signal)
    assert (signal.type, signal.polarity, signal.target) == (
        "first_try_success",
        "delight",
        "deploy",
    )
    retried = [
        assistant("", ("c1", "deploy", "{}")),
        tool("c1", "deploy", "Error: build missing"),
        assistant("", ("c2", "deploy", "{}")),
        tool("c2", "deploy", "deployed v3"),
    ]
    assert list(FirstTrySuccess().detect(SessionData.from_messages(retried), ctx)) == []


# --- regression -----------------------------------------------------------------------


def versioned(
    n: int, version: str, escalated: int, start: int
) -> tuple[list[SessionData], dict[str, list[Signal]]]:
    sessions = [
        SessionData.from_messages(
            chat(1), session_id=f"{version}-{i}", artifact_versions={"prompt": version}
        )
        for i in range(start, start + n)
    ]
    found = {
        s.session_id: [Signal("escalation", "friction", 0.8, "handed off", "rules.escalation")]
        for s in sessions[:escalated]
    }
    return sessions, found


def test_regression_after_a_new_prompt_version() -> None:
    old, old_signals = versioned(84, "v6", 10, 0)
    new, new_signals = versioned(90, "v7", 28, 0)
    [signal] = Regression().detect_window("agent", old + new, old_signals | new_signals, context())
    assert_well_formed(signal)
    assert signal.target == "prompt@v7:escalation"
    assert signal.description.startswith(
        "escalation rose from 12% (n=84) to 31% (n=90) after prompt v7"
    )
    assert len(signal.sessions) == 20
    assert all(sid.startswith("v7-") for sid in signal.sessions)


@pytest.mark.parametrize(
    ("n_old", "hits_old", "n_new", "hits_new"),
    [(10, 1, 10, 6), (84, 10, 90, 12), (84, 30, 90, 33)],
    ids=["too-few-sessions", "not-significant", "small-rise"],
)
def test_no_regression(n_old: int, hits_old: int, n_new: int, hits_new: int) -> None:
    old, old_signals = versioned(n_old, "v6", hits_old, 0)
    new, new_signals = versioned(n_new, "v7", hits_new, 0)
    found = Regression().detect_window("agent", old + new, old_signals | new_signals, context())
    assert list(found) == []


def test_two_proportion_p() -> None:
    assert two_proportion_p(10, 100, 10, 100) == pytest.approx(1.0)
    assert two_proportion_p(10, 100, 30, 100) < 0.001
    assert two_proportion_p(0, 50, 0, 50) == 1.0


# --- the example traces ---------------------------------------------------------------


def load_example() -> list[tuple[SessionData, bool | None]]:
    out = []
    with gzip.open(EXAMPLE) as lines:
        for line in lines:
            s = parse_session(orjson.loads(line), ReadContext(source="x"))
            data = SessionData(
                s.session_id,
                s.agent,
                s.messages,
                s.tool_calls,
                artifact_versions=s.artifact_versions,
            )
            out.append((data, s.outcome_success))
    return out


def test_example_traces() -> None:
    rows = load_example()
    sessions = [s for s, _ in rows]
    agent = sessions[0].agent
    ctx = DetectContext(
        now=NOW,
        baselines={
            (agent, None, "messages"): baseline([len(s.messages) for s in sessions]),
            (agent, None, "tool_calls"): baseline([len(s.tool_calls) for s in sessions]),
        },
        tool_failure_rates={(agent, "book_reservation"): 0.5},
    )
    detectors: list[Detector] = [
        LatencySpike(), CostSpike(), LongSession(), Timeout(), QualityRejection(),
        UnhandledMedia(), PromptDuplication(), UnusedPromptBlock(), EfficientFinish(),
        FirstTrySuccess(),
    ]  # fmt: skip
    found = {s.session_id: [x for d in detectors for x in d.detect(s, ctx)] for s in sessions}
    signals = [x for xs in found.values() for x in xs]
    for session in sessions:
        for signal in found[session.session_id]:
            assert_well_formed(signal)
            assert all(0 <= i < len(session.messages) for i in signal.evidence)
    types = {s.type for s in signals}
    # No timings, costs, media or QA tools in this sample, and one shared, clean prompt.
    assert not types & {"latency_spike", "cost_spike", "unhandled_media", "prompt_duplication"}
    # The policy is sent on every turn; some sections go unused, never its opening.
    unused = [s for s in signals if s.type == "unused_prompt_block"]
    assert unused
    assert not any(s.target.startswith("airline-agent-policy") for s in unused if s.target)
    # Long sessions really are long.
    median = statistics.median(len(s.tool_calls) for s in sessions)
    by_id = {s.session_id: s for s in sessions}
    for sid, xs in found.items():
        if any(x.type == "long_session" for x in xs):
            assert len(by_id[sid].tool_calls) > 1.5 * median or len(by_id[sid].messages) > 30
    # One prompt version and no tool definitions: nothing to compare, no unused tools.
    assert list(Regression().detect_window(agent, sessions, found, ctx)) == []
    assert list(UnusedTool().detect_window(agent, sessions, found, ctx)) == []
