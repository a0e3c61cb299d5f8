"""The reply grammar: the owner's answer to a digest, read into one typed command.

:func:`parse_reply` is pure and deterministic (no LLM, no I/O). It reads a reply in three
passes: the reason is split off first ("because", "since", "as", "reason:", a spaced dash,
an em dash, a colon) and kept verbatim; the rest is tokenized (``_words``); the tokens are
read into clauses, one per verb ("deploy 1 and 3, reject 2" is two clauses), and the
clauses are resolved against the cycle's items.

Anything ambiguous or invalid becomes an :class:`Ask` with a question for the owner —
numbers that are not items, contradictions, a negated deploy that is not a plain "don't
deploy 3", words the grammar does not know — and is never guessed into a :class:`Deploy`.
"deploy all" (and a bare "deploy") covers the auto-deployable items only; items named
explicitly are included whatever their deployability, and the deploy step decides what it
can do with them. The reply is untrusted text: it can only ever select among these
commands, and the reason is stored as data, never read as a command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from tighten.review._words import (
    HELP,
    ROLLBACK_ALONE,
    Clause,
    Reading,
    Verb,
    clean_target,
    is_last_deployment,
    read,
    split_reason,
    tokenize,
)

__all__ = [
    "Ask", "Command", "Deploy", "ItemRef", "Mixed", "Reject", "Rollback", "Show", "Status",
    "describe", "parse_reply",
]  # fmt: skip

Deployability = Literal["auto", "semi", "manual"]


@dataclass(frozen=True, slots=True)
class ItemRef:
    """One numbered item of a cycle's digest: how it can be deployed, and the artifact it
    changes (``"rollback 3"`` rolls back item 3's target)."""

    number: int
    deployability: Deployability
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Deploy:
    """Deploy these items."""

    numbers: tuple[int, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Reject these items."""

    numbers: tuple[int, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Mixed:
    """Deploy some items and reject others in one reply."""

    deploy: tuple[int, ...]
    reject: tuple[int, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Show:
    """Show one item in detail."""

    number: int


@dataclass(frozen=True, slots=True)
class Rollback:
    """Roll back an artifact, named as the owner wrote it (resolving the name is the
    caller's job); ``None`` means the last deployment."""

    target: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """Say what is pending."""


@dataclass(frozen=True, slots=True)
class Ask:
    """The reply was ambiguous or invalid: ask the owner this question."""

    question: str


Command: TypeAlias = Deploy | Reject | Mixed | Show | Rollback | Status | Ask


@dataclass(frozen=True, slots=True)
class _Cycle:
    numbers: tuple[int, ...]
    autos: tuple[int, ...]
    targets: dict[int, str | None]

    @classmethod
    def of(cls, items: Sequence[ItemRef]) -> _Cycle:
        numbers = tuple(sorted({item.number for item in items}))
        autos = tuple(sorted({item.number for item in items if item.deployability == "auto"}))
        return cls(numbers, autos, {item.number: item.target for item in items})

    def span(self) -> str:
        """The item numbers as the owner writes them: "1-5" (an en dash), "1, 2 and 4"."""
        n = self.numbers
        if len(n) >= 3 and n == tuple(range(n[0], n[-1] + 1)):
            return f"{n[0]}\u2013{n[-1]}"
        return _join(n)


def parse_reply(text: str, items: Sequence[ItemRef]) -> Command:
    """Read the owner's reply to a digest of ``items`` into one command. Never raises on
    any text; anything it cannot read with certainty becomes an :class:`Ask`."""
    if not text.strip():
        return Ask(f"The reply is empty. {HELP}")
    command_text, reason = split_reason(text)
    cycle = _Cycle.of(items)
    rollback = _rollback(command_text, reason, cycle)
    if rollback is not None:
        return rollback
    reading = read(tokenize(command_text), cycle.numbers)
    if isinstance(reading, str):
        return Ask(reading)
    return _resolve(reading, cycle, reason)


# --- rollback ---------------------------------------------------------------------------

_ROLLBACK: Final = re.compile(
    r"^[\W_]*(?:(?:please|pls|ok|okay|yes|so|then)\b[\W_]*)*(?:roll[\s-]*back|revert|undo)\b"
    r"(?P<target>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_ITEM: Final = re.compile(r"(?:items?\s*)?(?:#\s*)?(\d{1,6})", re.IGNORECASE)
_DECISION: Final = re.compile(r"\b(?:deploy|ship|approve|reject|skip)\b", re.IGNORECASE)


def _rollback(command_text: str, reason: str | None, cycle: _Cycle) -> Command | None:
    """A rollback, when the reply starts with one; its target is the rest, as written."""
    match = _ROLLBACK.match(command_text)
    if match is None:
        return None
    target = clean_target(match["target"])
    if match["target"].rstrip().endswith("?"):
        said = target or "last deploy"
        return Ask(f'Should I roll back {said}? If so, reply "rollback {said}".')
    if is_last_deployment(target):
        return Rollback(None, reason)
    if _DECISION.search(target):
        return Ask(ROLLBACK_ALONE)
    item = _ITEM.fullmatch(target)
    if item is None:
        return Rollback(target, reason)
    number = int(item[1])  # "rollback 3": the artifact item 3 changes
    if number not in cycle.targets:
        return Ask(_no_such_item([number], "roll back", cycle))
    if cycle.targets[number] is None:
        return Ask(f"Item {number} names no artifact. Which one should I roll back?")
    return Rollback(cycle.targets[number], reason)


# --- resolving clauses into a command ---------------------------------------------------

_VERB_WORDS: Final[dict[Verb | None, str]] = {
    "deploy": "deploy", "reject": "reject", "exclude": "leave out", "show": "show",
    "status": "show", "refuse": "reject",
}  # fmt: skip


def _resolve(reading: Reading, cycle: _Cycle, reason: str | None) -> Command:
    clauses = [c for c in reading.clauses if c.verb is not None or c.has_content()]
    for clause in clauses:  # "all except 4" is a deploy
        if clause.verb is None and clause.scope == "all" and clause.excluded:
            clause.verb = "deploy"
    verbs = {clause.verb for clause in clauses}
    if not cycle.numbers and verbs != {"status"}:
        return Ask("This cycle has no items to decide on.")
    if reading.missing:
        verb = _VERB_WORDS.get(reading.clauses[reading.missing[0][1]].verb, "decide on")
        return Ask(_no_such_item(sorted({n for n, _ in reading.missing}), verb, cycle))
    if not clauses:
        return Ask(_nothing_said(reading.affirmed, cycle))
    if verbs <= {"deploy", "reject", "exclude"}:
        return _decide(clauses, reading.question, cycle, reason)
    if len(clauses) == 1:
        return _single(clauses[0], reading.question, cycle, reason)
    if "refuse" in verbs:
        return Ask('Skip everything, or deploy some items? Reply "skip" or, say, "deploy 1 and 3".')
    if None in verbs:
        return Ask(_what_to_do(next(clause for clause in clauses if clause.verb is None)))
    return Ask('One thing at a time: ask to see an item on its own ("show 3"), then decide.')


def _no_such_item(missing: Sequence[int], verb: str, cycle: _Cycle) -> str:
    head = f"There is no item {missing[0]}" if len(missing) == 1 else "There are no items "
    head += "" if len(missing) == 1 else _join(missing)
    if not cycle.numbers:
        return f"{head}; this cycle has no items."
    which = "Which one" if verb in ("show", "roll back") else "Which ones"
    return f"{head}; the items are {cycle.span()}. {which} should I {verb}?"


def _nothing_said(affirmed: bool, cycle: _Cycle) -> str:
    """A reply with no verb and no item: "ok", "yes", "thanks", an emoji."""
    if affirmed and cycle.autos:
        count, autos = len(cycle.autos), _join(cycle.autos)
        return f'Deploy the {count} auto-deployable items ({autos})? Reply "deploy all".'
    return f"I could not find a decision in that. {HELP}"


def _single(clause: Clause, question: bool, cycle: _Cycle, reason: str | None) -> Command:
    """A reply of one clause that is not a deploy or reject: show, status, a plain "no",
    or numbers without a verb ("3?" shows item 3)."""
    if clause.verb == "status" and not clause.has_content():
        return Status()
    if clause.verb in ("show", "status"):
        return _show(clause, cycle)
    if clause.verb == "refuse" and not (clause.numbers or clause.excluded):
        return Reject(cycle.numbers, reason)
    if clause.verb == "refuse":  # "no 3", "no, except 3"
        named = _join(clause.numbers or clause.excluded)
        return Ask(f'Which items should I reject? Reply, say, "reject {named}" or "skip".')
    if question and len(clause.numbers) == 1 and not clause.excluded and not clause.scope:
        return Show(clause.numbers[0])
    return Ask(_what_to_do(clause))


def _what_to_do(clause: Clause) -> str:
    """The question for numbers without a verb ("1 and 3")."""
    named = sorted(set(clause.numbers + clause.excluded))
    if not named:
        return f"I could not find a decision in that. {HELP}"
    return f"What should I do with {_items(named)}: deploy, reject or show?"


def _show(clause: Clause, cycle: _Cycle) -> Command:
    numbers = sorted(set(clause.numbers))
    if len(numbers) == 1 and not clause.scope:
        return Show(numbers[0])
    if numbers:
        return Ask(f"I can show one item at a time: which one, {_join(numbers, 'or')}?")
    return Ask(f"Which item should I show? The items are {cycle.span()}.")


def _decide(clauses: list[Clause], question: bool, cycle: _Cycle, reason: str | None) -> Command:
    """Deploy, reject and leave-out clauses into one command."""
    problem = _clause_problem(clauses, cycle)
    if problem is not None:
        return Ask(problem)
    named: dict[int, set[Verb | None]] = {}
    for clause in clauses:
        for number in clause.numbers:
            named.setdefault(number, set()).add(clause.verb)
    left_out = {n for c in clauses for n in (c.numbers if c.verb == "exclude" else c.excluded)}
    deploy = _select(clauses, "deploy", cycle.autos, named) - left_out
    reject = _select(clauses, "reject", cycle.numbers, named) - left_out
    clash = sorted(n for n, verbs in named.items() if len(verbs) > 1) or sorted(deploy & reject)
    if clash:
        return Ask(_clash(clash[0], named.get(clash[0], {"deploy", "reject"})))
    verbs = {clause.verb for clause in clauses}
    for verb, chosen in (("deploy", deploy), ("reject", reject)):
        if verb in verbs and not chosen:
            return Ask(_nothing_to(verb, cycle))
    if not deploy and not reject:  # "remove 4" alone
        left = _items(sorted(named))
        return Ask(f"Leave out {left} and deploy the others, or reject {left}?")
    if question:
        said = _as_reply(deploy, reject)
        return Ask(f'Did you mean "{said}"? If so, send it again without the question mark.')
    if deploy and reject:
        return Mixed(tuple(sorted(deploy)), tuple(sorted(reject)), reason)
    return (
        Deploy(tuple(sorted(deploy)), reason) if deploy else Reject(tuple(sorted(reject)), reason)
    )


def _clause_problem(clauses: list[Clause], cycle: _Cycle) -> str | None:
    named_anywhere = any(clause.numbers for clause in clauses)
    for clause in clauses:
        verb = _VERB_WORDS.get(clause.verb, "deploy")
        if clause.dangling:
            return f"Except which items? The items are {cycle.span()}."
        if clause.both and len(set(clause.numbers)) != 2:
            return f"Which two items? The items are {cycle.span()}."
        if clause.scope and clause.numbers:
            numbers = _join(clause.numbers)
            return f'All of them, or only {numbers}? Reply "{verb} all" or "{verb} {numbers}".'
        if clause.scope == "rest" and not named_anywhere:
            return 'The rest of which items? Name those first, e.g. "approve 1, skip the rest".'
        if clause.verb == "exclude" and not clause.numbers:
            return f"Which items should I leave out? The items are {cycle.span()}."
    return None


def _select(
    clauses: list[Clause], verb: Verb, pool: tuple[int, ...], named: dict[int, set[Verb | None]]
) -> set[int]:
    """The numbers ``verb`` applies to: those named, or (for "all", "the rest" or nothing)
    the pool without the items named anywhere in the reply."""
    chosen: set[int] = set()
    for clause in clauses:
        if clause.verb == verb:
            chosen |= set(clause.numbers) if clause.numbers else set(pool) - named.keys()
    return chosen


def _clash(number: int, verbs: set[Verb | None]) -> str:
    said = [_VERB_WORDS[v] for v in ("deploy", "reject", "exclude") if v in verbs]
    return f"Item {number} is both to {' and to '.join(said)}. Which is it?"


def _nothing_to(verb: str, cycle: _Cycle) -> str:
    lead = f"That leaves nothing to {verb}"
    if verb == "deploy" and not cycle.autos:
        lead = "None of the items can be deployed automatically"
    return f"{lead}. Which items should I {verb}? The items are {cycle.span()}."


def _as_reply(deploy: set[int], reject: set[int]) -> str:
    parts = (("deploy", deploy), ("reject", reject))
    return ", ".join(f"{verb} {_join(sorted(nums))}" for verb, nums in parts if nums)


# --- describing a command ---------------------------------------------------------------


def describe(command: Command, items: Sequence[ItemRef] = ()) -> str:
    """A one-line echo of ``command`` for the confirmation message: "Deploying items 1 and
    3.", "Rejecting all 5 items: too risky before launch." (``items``, when given, lets it
    say "all")."""
    total = frozenset(item.number for item in items)
    match command:
        case Deploy(numbers, reason):
            return _sentence(f"Deploying {_items(numbers, total)}", reason)
        case Reject(numbers, reason):
            return _sentence(f"Rejecting {_items(numbers, total)}", reason)
        case Mixed(deploy, reject, reason):
            both = f"Deploying {_items(deploy, total)}; rejecting {_items(reject, total)}"
            return _sentence(both, reason)
        case Rollback(target, reason):
            return _sentence(f"Rolling back {target or 'the last deployment'}", reason)
        case Show(number):
            return f"Showing item {number}."
        case Status():
            return "Showing what is pending."
        case Ask(question):
            return _one_line(question)
    raise TypeError(f"not a command: {command!r}")  # pragma: no cover


def _sentence(text: str, reason: str | None) -> str:
    text = _one_line(f"{text}: {reason}" if reason else text)
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _items(numbers: Sequence[int], total: frozenset[int] = frozenset()) -> str:
    if len(numbers) > 1 and set(numbers) == total:
        return f"all {len(numbers)} items"
    if len(numbers) == 1:
        return f"item {numbers[0]}"
    return f"items {_join(numbers)}"


def _join(numbers: Sequence[int], last: str = "and") -> str:
    texts = [str(number) for number in numbers]
    if len(texts) <= 1:
        return "".join(texts)
    return f"{', '.join(texts[:-1])} {last} {texts[-1]}"
