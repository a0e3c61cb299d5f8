"""The reply grammar's vocabulary, and the first passes over a reply: splitting off the
owner's reason, turning the rest into tokens, and reading the tokens into clauses (one per
verb: "deploy 1 and 3, reject 2" is two). Resolving the clauses against the cycle's items
is ``grammar``'s job.

Phrases ("not now", "tell me more about", "everything except") are rewritten to
upper-case markers before words are read. The reply is lower-cased first, so a marker can
only come from the phrase table, never from the reply itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, cast

__all__ = [
    "HELP", "ROLLBACK_ALONE", "Clause", "Reading", "Token", "Verb", "clean_target",
    "is_last_deployment", "read", "split_reason", "tokenize",
]  # fmt: skip

ROLLBACK_ALONE: Final = 'Send a rollback on its own, e.g. "rollback master_system_core".'
HELP: Final = (
    'Reply "deploy all", "deploy 1 and 3", "remove 2, deploy", "skip", "show 3" or "status".'
)

Verb = Literal["deploy", "reject", "refuse", "exclude", "show", "status", "rollback"]
TokenKind = Literal[
    "num", "verb", "not", "except", "but", "all", "rest", "both", "range", "yes", "question",
    "unknown",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Token:
    """One token of a reply's command part: ``text`` is the verb for ``verb`` tokens and
    the word as written for the others; ``number`` is set for ``num``."""

    kind: TokenKind
    text: str
    number: int = 0


def _verbs(verb: Verb, *words: str) -> dict[str, Verb]:
    return dict.fromkeys(words, verb)


def _kinds(kind: TokenKind | None, *words: str) -> dict[str, TokenKind | None]:
    """``None`` for fillers, which are dropped."""
    return dict.fromkeys(words, kind)


_VERBS: Final[dict[str, Verb]] = {
    **_verbs("deploy", "deploy", "ship", "approve", "approved", "accept", "apply", "release",
             "DEPLOY"),
    **_verbs("reject", "reject", "rejected", "skip", "decline", "deny", "refuse", "discard",
             "dismiss"),
    **_verbs("refuse", "no", "nope", "nah", "none", "REFUSE"),
    **_verbs("exclude", "remove", "drop", "exclude", "omit"),
    **_verbs("show", "show", "details", "detail", "explain", "why", "expand", "open", "view",
             "SHOW"),
    **_verbs("status", "status", "pending", "STATUS"),
    **_verbs("rollback", "rollback", "revert", "undo"),
}  # fmt: skip

_WORDS: Final[dict[str, TokenKind | None]] = {
    **_kinds("not", "not", "NOT"),
    **_kinds("except", "except", "excluding", "without", "minus", "EXCEPT"),
    **_kinds("but", "but"),
    **_kinds("all", "all", "every", "anything", "each"),
    **_kinds("rest", "rest", "others", "other", "remaining", "remainder", "else"),
    **_kinds("both", "both"),
    **_kinds("range", "to", "through", "thru", "-"),
    **_kinds("yes", "yes", "yeah", "yep", "yup", "ok", "okay", "k", "sure", "fine", "lgtm",
             "great", "cool", "perfect", "nice", "awesome"),
    **_kinds(None, "please", "pls", "plz", "and", "then", "also", "just", "only", "the", "it",
             "them", "item", "items", "number", "num", "nr", "thanks", "thank", "thx", "ty",
             "cheers", "now", "too", "hi", "hey", "hello", "let's", "lets"),
}  # fmt: skip

_ORDINAL_WORDS: Final = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
)  # fmt: skip
_ORDINALS: Final = {word: n for n, word in enumerate(_ORDINAL_WORDS, start=1)}
_IGNORED_MARKS: Final = frozenset(",;.!()[]\"'*_`~:")
_MAX_DIGITS: Final = 30

_ORDINAL: Final = rf"(?:{'|'.join(_ORDINAL_WORDS)}|\d+(?:st|nd|rd|th))"
_PHRASES: Final = tuple(
    (re.compile(pattern), marker)
    for pattern, marker in (
        (r"\bno\.\s*(?=\d)", " "),
        (r"\bnot\s+(?:now|yet|today|this\s+time)\b|\bno\s+thank(?:s|\s+you)\b|\bhold\s+off\b"
         r"|\bnone\s+of\s+(?:them|these|those)\b", " REFUSE "),
        (r"\b(?:don'?t|do\s+not|never)\b", " NOT "),
        (r"\bwhat(?:'s|s|\s+is|\s+are)\s+(?:pending|left|open|outstanding)\b"
         r"|\bwhere\s+(?:are|do)\s+we(?:\s+(?:at|stand))?\b", " STATUS "),
        (r"\btell\s+me\s+(?:more\s+)?(?:about|on)\b|\btell\s+me\s+more\b"
         r"|\bmore\s+(?:info\s+|details?\s+)?(?:on|about)\b|\bdetails?\s+(?:on|of|for|about)\b"
         r"|\bwhat(?:'s|s|\s+is|\s+was|\s+about)\b|\bshow\s+me\b", " SHOW "),
        (r"\bgo\s+ahead(?:\s+(?:and|with))?\b", " DEPLOY "),
        (r"\b(?:looks|sounds)\s+good(?:\s+to\s+me)?\b", " yes "),
        (r"\b(?:apart\s+from|other\s+than|except\s+for|but\s+not|leaving\s+out)\b", " EXCEPT "),
        (r"\bleave\s+out\b", " remove "),
        (r"\b(?:all|each)\s+of\s+(?:them|these|those)\b|\bthe\s+lot\b|\beverything\b", " all "),
        (r"\bboth\s+of\s+(?:them|these|those)\b", " both "),
        (r"\bother\s+ones?\b", " others "),
        (rf"\b({_ORDINAL})\s+ones?\b", r" \1 "),
        (r"\bas\s+well\s+as\b", " and "),
        (r"\bthank\s+you\b|\bas\s+well\b|\bas[\s-]+is\b|\bfor\s+now\b|\bright\s+now\b", " "),
        (r"\broll\s*-?\s*back\b", " rollback "),
    )
)  # fmt: skip
_CHARS: Final = str.maketrans({
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
    "\u2026": ".", "&": " and ", "#": " ", "\u00a0": " ",
    **dict.fromkeys("\U0001f44e\u274c\U0001f6ab\u2716\u26d4\U0001f645", " no "),
    **dict.fromkeys("\U0001f44d\u2705\u2714\U0001f44c", " yes "),
})  # fmt: skip
_RANGE_DASH: Final = re.compile(r"(?<=\d)\s*-\s*(?=\d)")  # "1-3", "1 - 3"; "-1" is no range
_TOKEN: Final = re.compile(
    r"(?P<decimal>\d+\.\d+)|(?P<num>\d+)(?:st|nd|rd|th)?(?![a-z\d])"
    r"|(?P<word>[a-zA-Z]+(?:'[a-z]+)?)|(?P<mark>\S)"
)


def tokenize(command: str) -> list[Token]:
    """The tokens of a reply's command part (its reason already split off). Fillers
    ("please", "item", "the") are dropped; anything not in the vocabulary becomes an
    ``unknown`` token, which the reader turns into a question."""
    text = _RANGE_DASH.sub(" thru ", _strip_emoji(command.translate(_CHARS)).lower())
    for pattern, marker in _PHRASES:
        text = pattern.sub(marker, text)
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        token = _token(match)
        if token is not None:
            tokens.append(token)
    return tokens


def _token(match: re.Match[str]) -> Token | None:
    text = match.group()
    if match["num"] is not None:
        digits = match["num"]
        if len(digits) > _MAX_DIGITS:
            return Token("unknown", text[:20])
        return Token("num", text, int(digits))
    if match["word"] is not None:
        if text in _ORDINALS:
            return Token("num", text, _ORDINALS[text])
        if text in _VERBS:
            return Token("verb", _VERBS[text])
    if text == "?":
        return Token("question", text)
    if text in _IGNORED_MARKS:
        return None
    if text not in _WORDS:
        return Token("unknown", text[:30])
    kind = _WORDS[text]
    return None if kind is None else Token(kind, text)


def _strip_emoji(text: str) -> str:
    """``text`` without pictographs, their modifiers and joiners (kept: letters, digits,
    punctuation, in any script)."""
    return "".join(" " if _is_emoji(char) else char for char in text)


def _is_emoji(char: str) -> bool:
    if char.isascii():
        return False
    category = unicodedata.category(char)
    return category in {"So", "Sk", "Cf", "Cs", "Co", "Zs"} or char in "\ufe0e\ufe0f"


# --- the reason -------------------------------------------------------------------------

_SEPARATOR: Final = re.compile(
    r"\b(?:because|since|as(?![\s-]+(?:is|well|soon|planned)\b))\b"
    r"|\breason\s*:|\s[-\u2013]+\s|\u2014|--|:(?=\s|$)",
    re.IGNORECASE,
)
_LEAD: Final = re.compile(r"^(?:[\s\-\u2013\u2014:,]|because\b|since\b|reason\s*:)+", re.I)
_COURTESY: Final = re.compile(
    r"(?:^|[,.;:!\n])\s*(?:thanks(?:\s+a\s+lot)?|thank\s+you|thx|ty|cheers|please|pls)\W*$",
    re.IGNORECASE,
)
_TAIL_CHARS: Final = " \t\r\n.,;:"
_DECISIVE: Final = frozenset({"num", "all", "rest", "both", "except", "but", "not"})
_DECIDING: Final = frozenset({"deploy", "reject", "exclude"})
_UNDOING: Final = frozenset({"reject", "exclude", "refuse"})


def split_reason(text: str) -> tuple[str, str | None]:
    """Split a reply at the first reason marker ("because", "since", "as", "reason:", a
    spaced dash, an em dash, a colon) into the command part and the reason, which is kept
    verbatim but trimmed. A dash between two numbers is a range, and a marker other than
    "because" and "reason:" followed by more of the command ("deploy: 1 and 3",
    "deploy 1 - reject 2") is no marker."""
    for match in _SEPARATOR.finditer(text):
        before, after = text[: match.start()], text[match.end() :]
        if not match.group()[0].isalpha() and _is_not_a_separator(match.group(), before, after):
            continue
        explicit = match.group()[:1].lower() in ("b", "r")  # "because", "reason:"
        if not explicit and _reads_as_command(before, after):
            continue
        return before, clean_reason(after)
    return text, None


def _is_not_a_separator(mark: str, before: str, after: str) -> bool:
    """A leading dash or colon (a bullet), or a dash between two numbers (a range)."""
    if not any(char.isalnum() for char in before):
        return True
    dash = ":" not in mark
    return dash and before.rstrip()[-1:].isdigit() and after.lstrip()[:1].isdigit()


def _reads_as_command(before: str, after: str) -> bool:
    """Whether the text after a dash, colon, "since" or "as" is more of the command than
    a reason: up to the next marker, only known words with an item number, a deploy,
    reject or leave-out verb or a scope ("deploy: 1 and 3", "deploy 1 - reject 2"); or
    anywhere, an exception ("deploy all - except 4, it breaks"), or a negation after a
    deploy ("deploy 3: not sure")."""
    head = tokenize(_SEPARATOR.split(after, maxsplit=1)[0])
    known = all(token.kind != "unknown" for token in head)
    if known and any(t.kind in _DECISIVE or t.text in _DECIDING for t in head):
        return True
    tokens = tokenize(after)
    if any(token.kind in ("except", "but") for token in tokens):
        return True
    deploys = any(token.text == "deploy" for token in tokenize(before))
    return deploys and any(t.kind == "not" or t.text in _UNDOING for t in tokens)


def clean_reason(text: str) -> str | None:
    """The reason as the owner wrote it, without leading markers, trailing punctuation,
    emoji, or a trailing "thanks" set off by punctuation."""
    text = _COURTESY.sub("", _LEAD.sub("", text))
    while text and (text[-1] in _TAIL_CHARS or _is_emoji(text[-1])):
        text = text[:-1]
    return text or None


# --- rollback targets -------------------------------------------------------------------

_TARGET_EDGE: Final = re.compile(
    r"^(?:[\s,:;.!]|please\b|pls\b)+|(?:[\s,;:.!?]|\bplease|\bpls|\bthanks|\bthank\s+you"
    r"|\bthx|\bnow)+$",
    re.IGNORECASE,
)
_LAST_DEPLOYMENT: Final = re.compile(
    r"(?:to\s+)?(?:the\s+)?(?:(?:last|latest|previous|most\s+recent|recent)\b\s*)?"
    r"(?:deploy(?:ment)?|change|release|update|version|one|it|that|this)?",
    re.IGNORECASE,
)


def clean_target(text: str) -> str:
    """A rollback target as written, without emoji, courtesy words and edge punctuation."""
    return _TARGET_EDGE.sub("", _strip_emoji(text).strip())


def is_last_deployment(target: str) -> bool:
    """Whether a rollback target means "the last deployment" ("", "last deploy", "it")."""
    return _LAST_DEPLOYMENT.fullmatch(target) is not None


# --- reading tokens into clauses --------------------------------------------------------


@dataclass
class Clause:
    """What one verb applies to: numbers named, numbers left out ("except 4"), a scope
    ("all", "the rest"), or nothing (a bare "deploy": every auto item)."""

    verb: Verb | None = None
    numbers: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    scope: Literal["all", "rest"] | None = None
    both: bool = False
    excepting: bool = False  # after "except", "but", "not": numbers are left out
    dangling: bool = False  # an "except" with no number after it yet

    def has_content(self) -> bool:
        return bool(self.numbers or self.excluded or self.scope or self.both)


@dataclass
class Reading:
    clauses: list[Clause] = field(default_factory=lambda: [Clause()])
    missing: list[tuple[int, int]] = field(default_factory=list)  # (number, clause index)
    question: bool = False
    affirmed: bool = False  # "yes", "ok", 👍
    flip: bool = False  # the next verb was negated: "don't deploy" is a reject
    range_from: int | None = None

    @property
    def clause(self) -> Clause:
        return self.clauses[-1]


def read(tokens: list[Token], numbers: Sequence[int]) -> Reading | str:
    """The clauses of a reply, or the question to ask when its tokens cannot be read.
    ``numbers`` are the item numbers, sorted."""
    reading = Reading()
    for index in range(len(tokens)):
        problem = _step(reading, tokens, index, numbers)
        if problem is not None:
            return problem
    return reading


def _step(reading: Reading, tokens: list[Token], index: int, numbers: Sequence[int]) -> str | None:
    token, clause = tokens[index], reading.clause
    before = tokens[index - 1] if index else None
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    match token.kind:
        case "num":
            return _number(reading, token.number, numbers)
        case "verb" if token.text == "rollback":
            return ROLLBACK_ALONE
        case "verb":
            return _verb(reading, cast(Verb, token.text))
        case "not":
            return _negation(reading, after)
        case "range":
            if before is not None and after is not None and before.kind == after.kind == "num":
                reading.range_from = before.number
            elif token.text == "-" and after is not None and after.kind == "num":
                return f'I did not understand "-{after.text}". {HELP}'
        case "except":
            clause.excepting = clause.dangling = True
        case "but" if clause.scope == "all":  # "all but 2"; "ok but deploy 3" is a plain but
            clause.excepting = clause.dangling = True
        case "but":
            pass
        case "all" | "rest":
            clause.scope = "rest" if token.kind == "rest" else clause.scope or "all"
        case "both":
            clause.both = True
        case "yes":
            reading.affirmed = True
        case "question":
            reading.question = True
        case _:
            return f'I did not understand "{token.text}". {HELP}'
    return None


def _number(reading: Reading, number: int, numbers: Sequence[int]) -> str | None:
    clause = reading.clause
    into = clause.excluded if clause.excepting else clause.numbers
    clause.dangling = False
    start, reading.range_from = reading.range_from, None
    if number not in numbers:
        reading.missing.append((number, len(reading.clauses) - 1))
    elif start is None:
        into.append(number)
    elif start > number:
        return f"The range {start}-{number} runs backwards. Which items did you mean?"
    elif start in numbers:
        into.extend(n for n in numbers if start < n <= number)
    return None


def _verb(reading: Reading, verb: Verb) -> str | None:
    """A verb starts a clause, unless it repeats the verb of an empty one ("go ahead and
    deploy")."""
    if reading.flip:
        verb, reading.flip = "reject", False
    clause = reading.clause
    if clause.dangling:
        return 'Except which items? Reply, say, "deploy all except 4".'
    if clause.verb is None and not clause.has_content():
        clause.verb = verb
    elif clause.verb != verb or clause.has_content():
        reading.clauses.append(Clause(verb))
    return None


def _negation(reading: Reading, after: Token | None) -> str | None:
    """ "don't deploy 3" rejects 3; "deploy all, not 4" leaves 4 out; any other negation
    is a question."""
    if after is not None and after.kind == "verb" and after.text == "deploy":
        reading.flip = True
        return None
    if after is not None and after.kind == "num" and reading.clause.verb in ("deploy", "reject"):
        reading.clause.excepting = True
        return None
    return (
        "I can't tell whether that is a yes or a no. "
        'Reply, say, "deploy 1 and 3", "reject 2" or "skip".'
    )
