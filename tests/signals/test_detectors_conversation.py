"""The conversation detectors: tool errors, progress, escalation, unanswered questions,
corrections and sentiment — each on small hand-written transcripts (one that fires, one
close to it that must not) and all of them on the bundled tau-bench example."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.conftest import EXAMPLE
from tighten.signals.detectors import (
    corrections,
    escalation,
    progress,
    sentiment,
    tool_errors,
    unanswered,
)
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.text import failure_reason, looks_like_observation, strip_control
from tighten.traces.formats.base import ReadContext
from tighten.traces.formats.jsonl import parse_session

CONTEXT = DetectContext(now=datetime(2026, 1, 1, tzinfo=UTC))
MODULES = (tool_errors, progress, escalation, unanswered, corrections, sentiment)
ALL = [detector for module in MODULES for detector in module.DETECTORS]


def by_name(name: str) -> Any:
    return next(d for d in ALL if d.name == name)


def run(name: str, messages: list[dict[str, Any]]) -> list[Signal]:
    return list(by_name(name).detect(SessionData.from_messages(messages), CONTEXT))


def of_type(signals: Iterable[Signal], kind: str) -> list[Signal]:
    return [s for s in signals if s.type == kind]


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


def say(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def call(name: str, arguments: Any, call_id: str, text: str = "") -> dict[str, Any]:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "role": "assistant",
        "content": text,
        "tool_calls": [{"id": call_id, "name": name, "arguments": args}],
    }


def result(content: str, call_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"role": "tool", "content": content, "tool_call_id": call_id, "name": name, **extra}


def shell(command: str, output: str, call_id: str) -> list[dict[str, Any]]:
    return [call("bash", {"command": command}, call_id), result(output, call_id, "bash")]


# --- text helpers -----------------------------------------------------------------------


def test_failure_reason_knows_shell_and_test_runner_failures() -> None:
    assert failure_reason("Error: gift card balance is not enough") == "error message"
    assert failure_reason("<returncode>1</returncode>\n<output>boom</output>") == "exit code 1"
    assert failure_reason("bash: pytset: command not found") == "command not found"
    long_run = "collected 3 items\n" + "." * 5000 + "\n===== 1 failed, 2 passed in 0.3s =====\n"
    assert failure_reason(long_run) == "test failures"
    assert failure_reason('{"flights": [], "status": "available"}') is None
    assert failure_reason("All 12 tests passed.") is None


def test_control_markers_and_observations() -> None:
    assert strip_control("Thank you! ###STOP###") == "Thank you!"
    assert strip_control("###STOP###") == ""
    assert looks_like_observation("<returncode>0</returncode>\n<output>\nok\n</output>")
    assert not looks_like_observation("My order number is 42.")


# --- tool errors --------------------------------------------------------------------------

BOOKING_FAILS = [
    user("Book the 9am flight with my gift card."),
    call("book_reservation", {"flight": "HAT1", "payment": "gift_card_1"}, "c1"),
    result("Error: gift card balance is not enough", "c1", "book_reservation"),
]


def test_textual_error_result_is_a_tool_failure_with_call_and_result_as_evidence() -> None:
    (signal,) = run("rules.tool_failure", BOOKING_FAILS)
    assert (signal.type, signal.target, signal.evidence) == (
        "tool_failure",
        "book_reservation",
        (1, 2),
    )
    assert signal.description == (
        'book_reservation failed (error message): "Error: gift card balance is not enough"'
    )
    assert signal.polarity == "friction"


def test_structured_error_is_a_tool_failure_with_full_confidence() -> None:
    messages = [
        user("Look up order 7"),
        call("get_order", {"id": 7}, "c1"),
        result("", "c1", "get_order", is_error=True, error="upstream unavailable"),
    ]
    (signal,) = run("rules.tool_failure", messages)
    assert signal.confidence == 1.0
    assert signal.quote == "upstream unavailable"


def test_ordinary_results_are_not_failures() -> None:
    messages = [
        user("Any flights?"),
        call("search_flights", {"from": "JFK", "to": "LAX"}, "c1"),
        result('[{"flight": "HAT1", "status": "available"}]', "c1", "search_flights"),
    ]
    assert run("rules.tool_failure", messages) == []


def test_failure_answered_directly_to_the_user_is_unrecovered() -> None:
    messages = [*BOOKING_FAILS, say("Sorry, your booking could not be completed.")]
    (signal,) = run("rules.tool_failure_unrecovered", messages)
    assert signal.target == "book_reservation"
    assert signal.evidence == (1, 2, 3)
    assert signal.severity > run("rules.tool_failure", messages)[0].severity


def test_failure_retried_later_is_recovered() -> None:
    messages = [
        *BOOKING_FAILS,
        say("The gift card is short. Shall I use your credit card?"),
        user("Yes please."),
        call("book_reservation", {"flight": "HAT1", "payment": "credit_card_2"}, "c2"),
        result('{"reservation_id": "ABC123"}', "c2", "book_reservation"),
    ]
    assert run("rules.tool_failure_unrecovered", messages) == []
    assert len(run("rules.tool_failure", messages)) == 1


def test_failure_followed_by_another_tool_is_recovered() -> None:
    messages = [
        *BOOKING_FAILS,
        call("get_user_details", {"user_id": "u1"}, "c2"),
        result('{"payment_methods": {}}', "c2", "get_user_details"),
    ]
    assert run("rules.tool_failure_unrecovered", messages) == []


def test_another_tool_only_after_the_user_spoke_again_is_not_a_recovery() -> None:
    messages = [
        *BOOKING_FAILS,
        say("That did not work."),
        user("Then just show me my profile."),
        call("get_user_details", {"user_id": "u1"}, "c2"),
        result('{"name": "Ana"}', "c2", "get_user_details"),
    ]
    (signal,) = run("rules.tool_failure_unrecovered", messages)
    assert signal.target == "book_reservation"


def test_grep_without_matches_is_not_a_failure() -> None:
    messages = [
        user("Is foo used?"),
        *shell("grep -rn foo src/", "<returncode>1</returncode>", "c1"),
    ]
    assert run("rules.tool_failure", messages) == []


def test_identical_calls_with_reordered_keys_that_keep_failing_are_an_error_loop() -> None:
    messages = [user("Cancel order 42.")]
    for n, args in enumerate(['{"order": 42, "reason": "x"}', '{"reason":"x","order":42}'] * 2):
        messages += [
            call("cancel_order", args, f"c{n}"),
            result("Error: order is locked", f"c{n}", "cancel_order"),
        ]
    (signal,) = run("rules.error_loop", messages)
    assert (signal.type, signal.target) == ("error_loop", "cancel_order")
    assert "4 times with the same arguments, 4 failed" in signal.description
    assert signal.evidence == tuple(range(1, 9))


def test_near_identical_failing_calls_are_an_error_loop() -> None:
    messages = [user("Change my flight.")]
    for n, card in enumerate(["gift_card_1", "gift_card_2", "certificate_3"]):
        flights = [{"flight_number": f, "date": "2024-05-27"} for f in ("HAT1", "HAT2")]
        args = {"reservation_id": "R1", "cabin": "economy", "flights": flights, "payment_id": card}
        messages += [
            call("update_reservation", args, f"c{n}"),
            result(f"Error: {card} balance is not enough", f"c{n}", "update_reservation"),
        ]
    (signal,) = run("rules.error_loop", messages)
    assert signal.target == "update_reservation"
    assert "near-identical arguments, 3 failed" in signal.description


def test_searching_different_dates_is_not_an_error_loop() -> None:
    messages = [user("Any flight next week?")]
    for n, day in enumerate(["2024-05-20", "2024-05-21", "2024-05-22", "2024-05-23"]):
        messages += [
            call("search_flights", {"from": "JFK", "to": "MCO", "date": day}, f"c{n}"),
            result("[]", f"c{n}", "search_flights"),
        ]
    assert run("rules.error_loop", messages) == []


def test_rerunning_tests_that_change_between_runs_is_not_an_error_loop() -> None:
    messages = [user("Fix the bug.")]
    for n, outcome in enumerate(["2 failed, 1 passed", "1 failed, 2 passed", "3 passed"]):
        messages += shell("pytest -q", f"===== {outcome} in 0.1s =====", f"c{n}")
    assert run("rules.error_loop", messages) == []


def test_the_same_failure_text_three_times_is_an_error_loop() -> None:
    messages = [user("Deploy it.")]
    for n, target in enumerate(["staging", "prod", "eu-prod"]):
        messages += [
            call("deploy", {"target": target}, f"c{n}"),
            result("Error: credentials expired", f"c{n}", "deploy"),
        ]
    signals = run("rules.error_loop", messages)
    assert [s.target for s in signals] == ["deploy"]
    assert "same failure came back 3 times" in signals[0].description


def test_shell_observations_in_user_messages_are_tool_results_not_a_person() -> None:
    """SWE-agent-style transcripts: commands in fenced blocks, results as user messages."""
    messages = [
        {"role": "system", "content": "You are a coding agent."},
        user("Fix the failing test in calc.py"),
        say("Let me run it.\n```bash\ncd /repo && python -m pytest tests/test_calc.py\n```"),
        user("<returncode>1</returncode>\n<output>\nE   AssertionError\n</output>"),
        say("THIS IS STILL FAILING, let me look.\n```bash\ncat calc.py\n```"),
        user("<returncode>0</returncode>\n<output>\ndef add(a, b):\n    return a - b\n</output>"),
    ]
    (failure,) = run("rules.tool_failure", messages)
    assert (failure.target, failure.evidence) == ("pytest", (2, 3))
    assert "exit code 1" in failure.description
    assert run("rules.tool_failure_unrecovered", messages) == []
    assert run("rules.frustration", messages) == []
    assert run("rules.repeated_request", messages) == []


# --- progress -----------------------------------------------------------------------------


def test_reading_the_same_record_again_and_again_is_context_thrashing() -> None:
    messages = [user("Where is my order?")]
    for n in range(3):
        messages += [
            call("get_order", {"order_id": "A1"}, f"c{n}"),
            result('{"status": "shipped"}', f"c{n}", "get_order"),
        ]
    (signal,) = run("rules.context_thrashing", messages)
    assert (signal.type, signal.target, signal.quote) == ("context_thrashing", "get_order", "A1")
    assert signal.evidence == (1, 3, 5)


def test_catting_the_same_unchanged_file_is_context_thrashing() -> None:
    messages = [user("Why does add fail?")]
    for n in range(3):
        messages += shell("cat src/calc.py", "def add(a, b):\n    return a - b\n", f"c{n}")
    (signal,) = run("rules.context_thrashing", messages)
    assert signal.target == "bash"
    assert "src/calc.py" in signal.description


def test_paging_through_a_file_is_not_context_thrashing() -> None:
    messages = [user("Read the module.")]
    for n, lines in enumerate(["1,50p", "51,100p", "101,150p"]):
        messages += shell(f"sed -n {lines} src/big.py", f"lines {lines}", f"c{n}")
    assert run("rules.context_thrashing", messages) == []


def test_two_apologies_are_stagnation_but_one_is_manners() -> None:
    once = [user("Hi"), say("Sorry for the wait! How can I help?"), user("Refund please")]
    assert run("rules.stagnation", once) == []
    twice = [*once, say("I apologize, I could not issue it."), user("Try harder")]
    (signal,) = run("rules.stagnation", twice)
    assert (signal.target, signal.evidence) == ("apology", (1, 3))


def test_empathy_is_not_an_apology() -> None:
    messages = [
        user("My flight was cancelled."),
        say("I'm sorry to hear that. Let me check."),
        user("And my bag is lost."),
        say("I'm so sorry to hear about your bag."),
    ]
    assert run("rules.stagnation", messages) == []


def test_the_assistant_repeating_itself_is_stagnation() -> None:
    reply = "To change your flight I need your booking reference and the new date you prefer."
    messages = [user("Change my flight"), say(reply), user("Just do it"), say(reply + " Thanks!")]
    (signal,) = run("rules.stagnation", messages)
    assert (signal.target, signal.evidence) == ("repeated_reply", (1, 3))


def test_announcing_another_attempt_is_stagnation() -> None:
    messages = [user("Convert the file"), say("That failed. Let me try again with UTF-8.")]
    (signal,) = run("rules.stagnation", messages)
    assert signal.target == "retry"


# --- escalation ---------------------------------------------------------------------------


def test_handoff_tool_call_is_an_escalation() -> None:
    messages = [
        user("I want a refund for the cancelled trip."),
        call("transfer_to_human_agents", {"summary": "refund request"}, "c1"),
        result("Transfer successful", "c1", "transfer_to_human_agents"),
    ]
    (signal,) = run("rules.escalation", messages)
    assert (signal.type, signal.target, signal.evidence) == (
        "escalation",
        "transfer_to_human_agents",
        (1, 2),
    )


def test_a_person_asking_for_a_manager_is_an_escalation() -> None:
    messages = [user("Where is my parcel?"), say("Checking."), user("Let me speak to a manager.")]
    (signal,) = run("rules.escalation", messages)
    assert (signal.target, signal.evidence) == ("human_request", (2,))


def test_assistant_offering_a_human_is_an_escalation_when_no_tool_was_called() -> None:
    messages = [user("Can you waive the fee?"), say("I can transfer you to a human agent.")]
    (signal,) = run("rules.escalation", messages)
    assert signal.target == "assistant_handoff"


def test_money_transfers_and_bookings_are_not_escalations() -> None:
    messages = [
        user("Move $50 to savings and book the concert ticket."),
        call("transfer_funds", {"amount": 50, "to": "savings"}, "c1"),
        result('{"ok": true}', "c1", "transfer_funds"),
        call("book_ticket", {"event": "E1"}, "c2"),
        result('{"ok": true}', "c2", "book_ticket"),
        say("Done: $50 moved and your ticket is booked."),
    ]
    assert run("rules.escalation", messages) == []


# --- unanswered questions -----------------------------------------------------------------


def test_not_knowing_is_an_unanswered_question_quoting_the_question() -> None:
    messages = [
        user("What's the baggage allowance on the Lisbon route?"),
        say("I don't have information about baggage allowances for that route."),
    ]
    (signal,) = run("rules.unanswered_question", messages)
    assert (signal.type, signal.evidence) == ("unanswered_question", (0, 1))
    assert signal.quote == "What's the baggage allowance on the Lisbon route?"


def test_policy_refusal_is_a_refusal_with_lower_severity() -> None:
    messages = [
        user("Please cancel my basic economy ticket."),
        say("I'm sorry, but I can't cancel this because the policy does not allow it."),
        user("What is the capital of Peru?"),
        say("I'm not able to answer questions outside of travel."),
    ]
    refusal, gap = run("rules.unanswered_question", messages)
    assert (refusal.type, refusal.evidence) == ("refusal", (0, 1))
    assert (gap.type, gap.evidence) == ("unanswered_question", (2, 3))
    assert refusal.severity < gap.severity


def test_asking_for_input_or_thinking_aloud_is_not_unanswered() -> None:
    messages = [
        user("Change my order."),
        say("I can't proceed without your order number. What is it?"),
        user("It is 42."),
        call("get_order", {"order_id": 42}, "c1", text="I couldn't find it by name, so by id."),
        result('{"id": 42}', "c1", "get_order"),
        say("Found it: order 42 is on its way."),
    ]
    assert run("rules.unanswered_question", messages) == []


# --- corrections --------------------------------------------------------------------------


def test_a_person_saying_no_i_meant_is_a_correction() -> None:
    messages = [
        user("Book Paris."),
        say("Booked Paris, Texas."),
        user("No, I meant Paris, France!"),
    ]
    (signal,) = run("rules.correction", messages)
    assert (signal.type, signal.target, signal.evidence) == ("correction", "user", (1, 2))
    assert signal.severity >= 0.6


def test_owner_interventions_are_corrections() -> None:
    messages = [
        user("Can I get a discount?"),
        say("Sure, 50% off!"),
        user("Never offer discounts above 10%.", name="owner"),
        user("[owner] and always cite the policy page"),
    ]
    signals = run("rules.correction", messages)
    assert [(s.target, s.evidence) for s in signals] == [("owner", (2,)), ("owner", (3,))]


def test_polite_declines_are_not_corrections() -> None:
    messages = [
        user("What's the weather?"),
        say("Sunny. Anything else?"),
        user("No, thanks."),
        user("Not today, thanks."),
    ]
    assert run("rules.correction", messages) == []


def test_a_person_asking_the_same_thing_again_is_a_repeated_request() -> None:
    messages = [
        user("Please cancel my order 12345 and refund my credit card."),
        say("Could you tell me more about your account?"),
        user("Cancel order 12345 and refund my credit card, please."),
    ]
    (signal,) = run("rules.repeated_request", messages)
    assert (signal.type, signal.target, signal.evidence) == ("repeated_request", "repeat", (0, 2))


def test_a_reworded_request_is_a_rephrase_and_a_new_request_is_nothing() -> None:
    first = user("I need to change the delivery address for order 12345 to Berlin.")
    reworded = user("Please update the delivery address on order 12345 to Berlin.")
    assert run("rules.repeated_request", [first, say("Sure."), reworded])[0].target == "rephrase"
    other = user("Also, what's the return window for shoes bought last month?")
    assert run("rules.repeated_request", [first, say("Done."), other]) == []


# --- sentiment ----------------------------------------------------------------------------


def test_frustrated_words_and_shouting_are_frustration() -> None:
    messages = [
        user("This is ridiculous, this is the third time I ask!"),
        say("Let me check."),
        user("I NEED THIS FIXED TODAY"),
    ]
    signals = run("rules.frustration", messages)
    assert [(s.target, s.evidence) for s in signals] == [("explicit", (0,)), ("shouting", (2,))]


def test_airport_codes_are_not_shouting() -> None:
    messages = [user("Flying JFK LAX SFO next week, then ORD."), say("Noted.")]
    assert run("rules.frustration", messages) == []


def test_leaving_after_a_refusal_is_an_abrupt_ending() -> None:
    messages = [
        user("Refund my ticket."),
        say("I'm unable to refund basic economy tickets."),
        user("Forget it."),
    ]
    (signal,) = run("rules.frustration", messages)
    assert (signal.target, signal.evidence) == ("abrupt_ending", (1, 2))


def test_thanks_at_the_end_is_satisfaction_without_control_markers() -> None:
    messages = [user("Rebook me."), say("Done, you're on the 9am."), user("Thanks! ###STOP###")]
    (signal,) = run("rules.satisfaction", messages)
    assert (signal.polarity, signal.target, signal.evidence) == ("delight", "thanks", (2,))
    assert signal.quote == "Thanks!"


def test_praise_at_the_end_is_stronger_satisfaction() -> None:
    messages = [user("Fix the build."), say("Fixed."), user("Perfect, that worked. Thank you!")]
    (signal,) = run("rules.satisfaction", messages)
    assert signal.target == "praise"
    assert signal.severity > 0.5


@pytest.mark.parametrize(
    "last",
    [
        "thanks, but it still doesn't work",
        "Thanks anyway.",
        "Thank you. Can I talk to a real person now?",
        "###STOP###",
    ],
)
def test_thanks_spoiled_or_absent_is_not_satisfaction(last: str) -> None:
    messages = [user("Fix the build."), say("I changed the config."), user(last)]
    assert run("rules.satisfaction", messages) == []


# --- the bundled example ------------------------------------------------------------------


def _example_sessions() -> list[SessionData]:
    sessions = []
    with gzip.open(EXAMPLE) as lines:
        for line in lines:
            parsed = parse_session(orjson.loads(line), ReadContext(source="x"))
            sessions.append(
                SessionData(
                    session_id=parsed.session_id,
                    agent=parsed.agent,
                    messages=parsed.messages,
                    tool_calls=parsed.tool_calls,
                )
            )
    return sessions


def test_all_detectors_on_the_example_keep_their_promises() -> None:
    sessions = _example_sessions()
    found = {s.session_id: [sig for d in ALL for sig in d.detect(s, CONTEXT)] for s in sessions}
    for session in sessions:
        signals = found[session.session_id]
        messages = session.messages
        types = {(s.type, s.target) for s in signals}
        if any(c.name == "transfer_to_human_agents" for c in session.tool_calls):
            assert ("escalation", "transfer_to_human_agents") in types, session.session_id
        failed_results = {
            i
            for i, m in enumerate(messages)
            if m["role"] == "tool" and m["content"].startswith("Error:")
        }
        failure_evidence = {i for s in of_type(signals, "tool_failure") for i in s.evidence}
        assert failed_results <= failure_evidence, session.session_id
        for signal in signals:
            assert 0.0 <= signal.severity <= 1.0
            assert 0.0 <= signal.confidence <= 1.0
            assert all(0 <= i < len(messages) for i in signal.evidence), signal
            assert signal.description
            assert "\n" not in signal.description
            assert "###" not in signal.description + (signal.quote or ""), signal
            if signal.type in ("satisfaction", "correction", "repeated_request"):
                assert all(messages[i]["role"] in ("user", "assistant") for i in signal.evidence)
        assert {s.polarity for s in of_type(signals, "satisfaction")} <= {"delight"}


def test_detectors_are_deterministic_and_see_appended_messages() -> None:
    session = _example_sessions()[0]
    first = [sig for d in ALL for sig in d.detect(session, CONTEXT)]
    assert first == [sig for d in ALL for sig in d.detect(session, CONTEXT)]
    session.messages.append(user("This is useless!"))
    again = [sig for d in ALL for sig in d.detect(session, CONTEXT)]
    assert any(s.type == "frustration" and s.target == "explicit" for s in again)


@pytest.mark.parametrize(
    ("said", "asked"),
    [
        ("I'd appreciate speaking with a human agent about this.", True),
        ("Connecting me with a human agent would be perfect.", True),
        ("I need a live agent please.", True),
        ("Okay, I'll contact a human agent myself if needed. Thanks!", False),
        ("The human agent told me yesterday that it was fine.", False),
    ],
)
def test_a_request_for_a_human_is_not_a_mention_of_one(said: str, asked: bool) -> None:
    from tighten.signals.detectors._cues import HUMAN_REQUEST

    assert bool(HUMAN_REQUEST.search(said.lower())) is asked
