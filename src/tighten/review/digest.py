"""The digest: a cycle's proposals as the owner reads them in a chat, a terminal, an
e-mail or a web page, and one item in full ("show me item 3").

Text and markdown digests are messages split between items, each at most
:data:`PART_LIMIT` characters as Telegram counts them (UTF-16 units; it refuses more than
4,096, and WhatsApp's limit is similar); HTML is one complete, self-contained document.
Proposals may carry text derived from traces, which is untrusted: markdown escapes it and
HTML escapes every value.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from tighten.proposals.model import GOALS, Cycle, Proposal, describe_impact

__all__ = ["FORMATS", "PART_LIMIT", "Format", "LastEffect", "render_digest", "render_item"]

Format = Literal["text", "markdown", "html"]
FORMATS: tuple[Format, ...] = ("text", "markdown", "html")
PART_LIMIT = 4000
_LABEL_ROOM = 20  # for the "(2/3)" label of a digest in several parts
_EVIDENCE_SHOWN = 25

HEADINGS = {"accuracy": "Accuracy", "capabilities": "Capabilities", "cost": "Cost"}
TAGS = {
    "auto": "auto-deploy",
    "semi": "needs your config change",
    "manual": "needs investigation / code",
}


@dataclass(frozen=True, slots=True)
class LastEffect:
    """An item deployed last cycle and its measured effect (``None``: still measuring)."""

    number: int
    title: str
    effect_text: str | None = None


_Numbered = tuple[int, Proposal]  # a proposal and its number in the digest


def _tag(p: Proposal) -> str:
    return TAGS.get(p.deployability, p.deployability)


def _shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: whole, its first sentence, or cut at a
    word with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    sentence = re.match(r"(.{30,}?[.!?])\s", text)
    if sentence and len(sentence.group(1)) <= limit:
        return sentence.group(1)
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def _meta(cycle: Cycle) -> str:
    """The window, sessions analysed and average cost."""
    facts = [cycle.window_text]
    sessions = cycle.stats.get("sessions")
    if isinstance(sessions, int) and not isinstance(sessions, bool):
        facts.append(f"{_count(sessions, 'session')} analysed")
    cost = cycle.stats.get("avg_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        facts.append(f"avg cost ${cost:.3f}" if cost < 1 else f"avg cost ${cost:,.2f}")
    return " · ".join(f for f in facts if f)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _title(cycle: Cycle, count: int) -> str:
    changes = _count(count, "proposed change") if count else "no changes"
    return f"{cycle.agent or 'Your agent'} — {changes}"


def _groups(items: Sequence[_Numbered]) -> list[tuple[str, list[_Numbered]]]:
    by_heading: dict[str, list[_Numbered]] = {}
    for item in items:
        by_heading.setdefault(HEADINGS.get(item[1].goal or "", "Other"), []).append(item)
    order = [*(HEADINGS[g] for g in GOALS), "Other"]
    return [(h, by_heading[h]) for h in order if h in by_heading]


def _reply_options(numbers: Sequence[int]) -> list[str]:
    """``deploy all · deploy 1 3 · remove 2, deploy · skip · show me item 2``, with this
    cycle's numbers."""
    if not numbers:
        return []
    options = ["deploy all"]
    if len(numbers) >= 2:
        pick = [numbers[0], numbers[2]] if len(numbers) >= 3 else [numbers[0]]
        options += [f"deploy {' '.join(map(str, pick))}", f"remove {numbers[1]}, deploy"]
    return [*options, "skip", f"show me item {numbers[min(1, len(numbers) - 1)]}"]


def _summary(items: Sequence[_Numbered]) -> tuple[str, str]:
    """The numbers that deploy on approval, and those that need the owner."""
    auto = ", ".join(str(n) for n, p in items if p.deployability == "auto") or "none"
    rest = ", ".join(str(n) for n, p in items if p.deployability != "auto") or "none"
    return auto, rest


@dataclass(frozen=True, slots=True)
class _Style:
    """How one format writes the digest's parts; ``esc`` makes untrusted text inert."""

    esc: Callable[[str], str]
    code: Callable[[str], str]
    strong: str  # templates, filled with str.format
    option: str
    tag: str  # {tag}: the words, {css}: auto, semi, manual or other
    heading: str
    header: str  # {title}, {cycle}, {meta}
    meta: str
    entry: str  # {n}, {head}, {tail}
    tail: str
    bullet: str
    line: str
    line_sep: str


TEXT = _Style(
    esc=str, code=str, strong="{}", option="{}", tag="{tag}", heading="{}",
    header="{title} (cycle {cycle}){meta}", meta="\n{}", entry="[{n}] {head}{tail}",
    tail="\n    {}", bullet="- {}", line="{}", line_sep="\n",
)  # fmt: skip
MARKDOWN = _Style(
    esc=lambda s: _md(s), code=lambda s: _code(s), strong="**{}**", option="`{}`",
    tag="_{tag}_", heading="### {}", header="## {title} (cycle {cycle}){meta}", meta="\n{}",
    entry="- **{n}.** {head}{tail}", tail="\n  {}", bullet="- {}", line="{}", line_sep="\n\n",
)  # fmt: skip
HTML = _Style(
    esc=lambda s: _e(s), code=lambda s: f"<code>{_e(s)}</code>", strong="<strong>{}</strong>",
    option="<kbd>{}</kbd>", tag='<span class="tag tag-{css}">{tag}</span>', heading="<h2>{}</h2>",
    header="<h1>{title} <small>(cycle {cycle})</small></h1>{meta}",
    meta='\n<p class="meta">{}</p>', entry="<p><strong>{n}.</strong> {head}{tail}</p>",
    tail="<br>\n{}", bullet="<p>{}</p>", line="<p>{}</p>", line_sep="\n",
)  # fmt: skip
STYLES = {"text": TEXT, "markdown": MARKDOWN, "html": HTML}


def _entry(style: _Style, number: int, head: str, tail: Sequence[str]) -> str:
    rest = " · ".join(x for x in tail if x)
    return style.entry.format(n=number, head=head, tail=style.tail.format(rest) if rest else "")


def _item_entry(style: _Style, item: _Numbered) -> str:
    """What changes and where; why, the expected impact and who deploys it."""
    number, p = item
    head = style.esc(_shorten(p.title, 80))
    if p.target:
        head += f" — {style.code(_shorten(p.target, 120))}"
    why = _shorten(p.rationale or "", 140)
    impact = _shorten(describe_impact(p.expected_impact), 200)
    css = p.deployability if p.deployability in TAGS else "other"
    tag = style.tag.format(tag=style.esc(_tag(p)), css=css)
    status = "" if p.status == "pending" else style.esc(p.status)
    return _entry(style, number, head, [style.esc(why), style.esc(impact), tag, status])


def _last_entry(style: _Style, e: LastEffect) -> str:
    """A change deployed last cycle; its old number is no item of this cycle."""
    effect = _shorten(e.effect_text or "measuring…", 160)
    return style.bullet.format(style.esc(f"{_shorten(e.title, 160)} (was #{e.number}): {effect}"))


def _header(style: _Style, cycle: Cycle, count: int) -> str:
    meta = _meta(cycle)
    return style.header.format(
        title=style.esc(_title(cycle, count)),
        cycle=cycle.cycle_id,
        meta=style.meta.format(style.esc(meta)) if meta else "",
    )


def _footer(style: _Style, all_items: Sequence[_Numbered]) -> str:
    """The reply options, for the items still pending (decided ones take no reply)."""
    items = [(n, p) for n, p in all_items if p.status == "pending"]
    lines = ["Nothing to change this time: no reply needed."]
    if all_items and not items:
        lines = ["Every item of this cycle has been decided."]
    if items:
        auto, rest = _summary(items)
        options = " · ".join(style.option.format(o) for o in _reply_options([n for n, _ in items]))
        strong = style.strong.format
        lines = [
            f"{strong('Auto-deploy:')} {auto} · {strong('needs you:')} {rest}",
            f"{strong('Reply:')} {options}",
        ]
    return style.line_sep.join(style.line.format(line) for line in lines)


# ~ only where it could close a strikethrough, _ at a word's edge, # opening a line
_MD_SPECIAL = re.compile(r"[\\`*\[\]<>|$]|(?<=\S)~|(?<!\w)_|_(?!\w)|^[ \t]{0,3}#", re.M)


def _md(text: str) -> str:
    """Text that markdown shows as is: no links, images, HTML, emphasis or headings."""
    return _MD_SPECIAL.sub(lambda m: f"{m.group(0)[:-1]}\\{m.group(0)[-1]}", text)


def _code(text: str) -> str:
    """A code span that holds any text, backticks included."""
    text = " ".join(text.split())
    ticks = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _fence(text: str, info: str = "") -> str:
    ticks = "`" * max(3, max(map(len, re.findall("`+", text)), default=0) + 1)
    return f"{ticks}{info}\n{text.rstrip(chr(10))}\n{ticks}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_Block = tuple[str, str]  # (text, the heading line to repeat when it starts a message)


def _blocks(
    style: _Style, cycle: Cycle, proposals: Sequence[Proposal], last: Sequence[LastEffect]
) -> list[_Block]:
    items = [(p.number if p.number is not None else n, p) for n, p in enumerate(proposals, 1)]
    blocks: list[_Block] = [(_header(style, cycle, len(items)), "")]
    for heading, group in _groups(items):
        first = _item_entry(style, group[0])
        blocks.append((f"\n{style.heading.format(heading)}\n{first}", ""))
        again = style.heading.format(f"{heading} (continued)")
        blocks += [(_item_entry(style, i), again) for i in group[1:]]
    if last:
        first = _last_entry(style, last[0])
        blocks.append((f"\n{style.heading.format('Last time')}\n{first}", ""))
        again = style.heading.format("Last time (continued)")
        blocks += [(_last_entry(style, e), again) for e in last[1:]]
    blocks.append((f"\n{_footer(style, items)}", ""))
    return blocks


def _units(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts it (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def _pack(blocks: Sequence[_Block], limit: int) -> list[str]:
    """Join blocks into messages of at most ``limit`` UTF-16 units, never cutting one."""
    budget = limit - _LABEL_ROOM
    parts: list[list[str]] = [[]]
    size = 0
    for text, again in blocks:
        if parts[-1] and size + 1 + _units(text) > budget:
            parts.append([])
            text = f"{again}\n{text}" if again else text.lstrip("\n")
        if _units(text) > budget:  # one block longer than a message: only with absurd input
            text = text.encode("utf-16-le")[: 2 * budget - 2].decode("utf-16-le", "ignore") + "…"
        size = size + 1 + _units(text) if parts[-1] else _units(text)
        parts[-1].append(text)
    joined = ["\n".join(p) for p in parts]
    if len(joined) == 1:
        return joined
    return [f"{p}\n\n({n}/{len(joined)})" for n, p in enumerate(joined, start=1)]


_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 44em; margin: auto; padding: 1em; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.1em; margin-top: 1.4em; }} .meta {{ color: #555; }}
pre {{ background: #f4f4f4; padding: .8em; overflow-x: auto; }}
.tag {{ font-size: .85em; padding: 0 .4em; border-radius: .3em; background: #eee; }}
.tag-auto {{ background: #dff3e3; }} .tag-semi {{ background: #fff1cc; }}
.tag-manual {{ background: #fde2e1; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def _document(title: str, body: Sequence[str]) -> str:
    """A complete HTML page that loads nothing (its content policy forbids it)."""
    return _PAGE.format(title=_e(title), body="\n".join(body))


def render_digest(
    cycle: Cycle,
    proposals: Sequence[Proposal],
    *,
    last_deployed: Sequence[LastEffect] | None = None,
    fmt: Format = "text",
    limit: int = PART_LIMIT,
) -> list[str]:
    """The digest of ``cycle``: a header, the proposals numbered and grouped by goal, what
    was deployed last time and its effect, and the reply options. Text and markdown come as
    messages of at most ``limit`` characters split between items; HTML as one document."""
    last = list(last_deployed or ())
    if fmt == "html":
        blocks = _blocks(HTML, cycle, proposals, last)
        return [_document(_title(cycle, len(proposals)), [text for text, _ in blocks])]
    if fmt not in FORMATS:
        raise ValueError(f"unknown digest format {fmt!r}; use one of {', '.join(FORMATS)}")
    return _pack(_blocks(STYLES[fmt], cycle, proposals, last), limit)


# -- one item in full --------------------------------------------------------------------


def _facts(p: Proposal) -> str:
    confidence = f"confidence {p.confidence:.2f}" if p.confidence is not None else ""
    facts = [p.goal or "", _tag(p), confidence, p.status]
    return " · ".join(f for f in [*facts, describe_impact(p.expected_impact)] if f)


def _evidence(p: Proposal) -> list[str]:
    """``session-id (messages 3, 7)`` for the first sessions, then how many more."""
    shown = [
        e.session_id
        + f" (messages {', '.join(map(str, e.message_indexes))})" * bool(e.message_indexes)
        for e in p.evidence[:_EVIDENCE_SHOWN]
    ]
    more = len(p.evidence) - len(shown)
    return shown + [f"… and {more} more"] * bool(more)


def _changes(p: Proposal) -> list[tuple[str, str]]:
    """The diff, else the current and proposed values, as (label, text)."""
    values = (("Current", p.current_value), ("Proposed", p.proposed_value))
    return [("Diff", p.diff)] if p.diff else [(k, v) for k, v in values if v]


def _item_text(p: Proposal, title: str) -> str:
    out = [f"[{p.number}] {title}" if p.number is not None else title, _facts(p)]
    if p.rationale:
        out.append(f"\nWhy\n{p.rationale.strip()}")
    if evidence := _evidence(p):
        out.append(
            f"\nEvidence ({_count(len(p.evidence), 'session')})\n"
            + "\n".join(f"- {e}" for e in evidence)
        )
    out += [f"\n{label}\n{text.rstrip()}" for label, text in _changes(p)]
    return "\n".join(out) + "\n"


def _item_markdown(p: Proposal, title: str) -> str:
    out = [f"### {_md(title)}", f"_{_md(_facts(p))}_"]
    if p.rationale:
        out += ["**Why**", "\n".join(_md(line) for line in p.rationale.strip().splitlines())]
    if evidence := _evidence(p):
        out += [
            f"**Evidence** ({_count(len(p.evidence), 'session')})",
            "\n".join(f"- {_md(e)}" for e in evidence),
        ]
    for label, text in _changes(p):
        out += [f"**{label}**", _fence(text, "diff" if label == "Diff" else "")]
    return "\n\n".join(out) + "\n"


def _item_html(p: Proposal, title: str) -> str:
    body = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{_e(_facts(p))}</p>']
    if p.rationale:
        body += ["<h2>Why</h2>", "<p>" + _e(p.rationale.strip()).replace("\n", "<br>\n") + "</p>"]
    if evidence := _evidence(p):
        body += [f"<h2>Evidence ({_count(len(p.evidence), 'session')})</h2>", "<ul>"]
        body += [f"<li>{_e(e)}</li>" for e in evidence] + ["</ul>"]
    for label, text in _changes(p):
        body += [f"<h2>{label}</h2>", f"<pre>{_e(text)}</pre>"]
    return _document(title, body)


def render_item(proposal: Proposal, fmt: Format = "text") -> str:
    """One proposal in full, for "show me item 3": the full rationale, the evidence
    sessions and the change (a fenced diff in markdown, ``<pre>`` in a complete HTML
    document)."""
    render = {"text": _item_text, "markdown": _item_markdown, "html": _item_html}.get(fmt)
    if render is None:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    title = proposal.headline
    if proposal.number is not None and fmt != "text":
        title = f"{proposal.number}. {title}"
    return render(proposal, title)
