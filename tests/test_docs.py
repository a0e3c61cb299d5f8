"""The docs keep up with the code: every command, option, setting, hook and table is
documented, every ``--json`` field is named, and every relative link resolves."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from tests.conftest import EXAMPLE, ROOT
from tighten import hookspecs
from tighten.cli.app import cli, main
from tighten.config import Settings
from tighten.hookspecs import hookimpl
from tighten.plugins import plugin_manager
from tighten.signals.detectors import builtin_detectors
from tighten.signals.model import DetectContext, SessionData, Signal
from tighten.signals.score import FEATURES
from tighten.store.schema import metadata

DOCS = ROOT / "docs"
MARKDOWN = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
OTLP_EXAMPLE = ROOT / "examples" / "otlp_genai_agent.json"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def _commands(
    command: click.Command, path: tuple[str, ...] = ("tighten",)
) -> Iterator[tuple[str, click.Command]]:
    """Every command reachable from ``command``, groups included, by full path."""
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(cli))
# Commands that run: leaves, and groups that do something without a sub-command.
LEAVES = sorted(
    p for p, c in COMMANDS.items() if not isinstance(c, click.Group) or c.invoke_without_command
)


def _prose_lines(text: str) -> Iterator[str]:
    """The lines of a markdown text outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def _sections(path: Path) -> dict[str, str]:
    """Level-2 sections of a markdown file: heading text → the text up to the next one."""
    sections: dict[str, str] = {}
    current: str | None = None
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            current = line[3:].strip()
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


CLI_SECTIONS = _sections(DOCS / "cli.md")


def _section_of(command_path: str) -> str:
    """The section of docs/cli.md for a command; the root's options are its globals."""
    heading = "Global options" if command_path == "tighten" else command_path
    assert heading in CLI_SECTIONS, f"docs/cli.md has no '## {heading}' heading"
    return CLI_SECTIONS[heading]


def _long_flags(command: click.Command) -> list[str]:
    flags = []
    for param in command.params:
        if isinstance(param, click.Option):
            names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
            if names and "--help" not in names:
                flags.append(names[0])
    return flags


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _prose_lines(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug, n = _slug(match.group(1)), 1
            while slug in found:
                slug, n = f"{_slug(match.group(1))}-{n}", n + 1
            found.add(slug)
    return found


# -- commands ---------------------------------------------------------------------------


@pytest.mark.parametrize("command_path", sorted(COMMANDS))
def test_every_command_has_help(command_path: str) -> None:
    command = COMMANDS[command_path]
    assert (command.help or "").strip(), f"`{command_path}` has no help text"


@pytest.mark.parametrize("command_path", LEAVES)
def test_every_command_has_a_section_in_cli_md(command_path: str) -> None:
    assert command_path in CLI_SECTIONS, f"docs/cli.md needs a '## {command_path}' heading"


@pytest.mark.parametrize("command_path", sorted(COMMANDS))
def test_every_option_is_in_its_command_section(command_path: str) -> None:
    flags = _long_flags(COMMANDS[command_path])
    if not flags:
        return
    section = _section_of(command_path)
    missing = [flag for flag in flags if not re.search(rf"{re.escape(flag)}(?![\w-])", section)]
    assert not missing, f"docs/cli.md, section of `{command_path}`, does not mention {missing}"


@pytest.mark.parametrize("command_path", LEAVES)
def test_every_argument_is_in_its_command_section(command_path: str) -> None:
    section = _section_of(command_path)
    for param in COMMANDS[command_path].params:
        if isinstance(param, click.Argument):
            metavar = param.metavar or (param.name or "").upper()
            assert metavar in section, f"`{command_path}`: argument {metavar} is not documented"


def test_cli_md_has_no_section_for_a_command_that_does_not_exist() -> None:
    documented = {h for h in CLI_SECTIONS if h.startswith("tighten ")}
    assert documented <= set(LEAVES), f"documented but not commands: {documented - set(LEAVES)}"


# -- --json shapes ----------------------------------------------------------------------

JSON_COMMANDS = sorted(p for p in LEAVES if "--json" in _long_flags(COMMANDS[p]))
# How to run each command with --json on the bundled examples (after the ones before it).
RUNS = {
    "tighten db upgrade": ["db", "upgrade"],
    "tighten ingest": ["ingest", str(EXAMPLE), str(OTLP_EXAMPLE), "{bad}"],
    "tighten detect": ["detect"],
    "tighten stats": ["stats"],
    "tighten signals list": ["signals", "list", "--limit", "1000"],
    "tighten calibrate": ["calibrate"],
    "tighten postmortem": ["postmortem", "conv-booking-001"],
    "tighten eval detect": ["eval", "detect", str(EXAMPLE)],
    "tighten sessions list": ["sessions", "list", "--limit", "500"],
    "tighten sessions show": ["sessions", "show", "conv-booking-001"],
    "tighten rejects list": ["rejects", "list"],
    "tighten db status": ["db", "status"],
    "tighten artifacts import": ["artifacts", "import", "{artifacts}", "--agent", "bot"],
    "tighten artifacts list": ["artifacts", "list"],
    "tighten artifacts show": ["artifacts", "show", "config"],
    "tighten artifacts deploy": ["artifacts", "deploy", "config", "1", "--label", "staging"],
    "tighten artifacts diff": ["artifacts", "diff", "config", "1", "1"],
    "tighten artifacts history": ["artifacts", "history", "config"],
    "tighten artifacts rollback": ["artifacts", "rollback", "config", "--to", "1"],
    "tighten proposals add": ["proposals", "add", "{cycle}"],
    "tighten proposals list": ["proposals", "list"],
    "tighten review digest": ["review", "digest"],
    "tighten review reply": ["review", "reply", "remove 1, deploy because the docs say so"],
    "tighten review send": ["review", "send", "--channel", "console"],
    "tighten review poll": ["review", "poll", "--channel", "console"],
}
# Objects whose keys are data (a path, a feature, a signal type): their keys are not
# fields, and neither are the keys inside them, except for KEYED ones, whose values are
# objects with documented fields.
OPAQUE = {"formats", "outcome", "artifact_versions", "attributes", "messages", "by_type"}
OPAQUE |= {"features", "weights", "labels", "refused", "before", "after"}
OPAQUE |= {"stats", "expected_impact", "failed"}  # free-form; `failed` is keyed by item
KEYED = {"detectors"}


# A cycle for `proposals add`: item 2 (cost) deploys to the imported `config`; item 1
# (accuracy, numbered first) is left out.
CYCLE = {
    "agent": "bot",
    "window_start": "2026-11-20T06:00:00Z",
    "window_end": "2026-11-22T06:00:00Z",
    "stats": {"sessions": 200, "avg_cost_usd": 0.04},
    "proposals": [
        {
            "kind": "model_switch",
            "goal": "cost",
            "deployability": "auto",
            "target_artifact": "config",
            "current_value": '{"model": "gpt-4.1-mini", "temperature": 0.2}',
            "proposed_value": '{"model": "gpt-4.1-nano", "temperature": 0.2}',
            "rationale": "The smaller model answers as well.",
            "evidence": [{"session_id": "conv-booking-001", "message_indexes": [1, 3]}],
            "expected_impact": {"cost_usd_per_day": 2.5},
            "confidence": 0.7,
            "pattern_key": "cost:model",
        },
        {"kind": "code_change", "goal": "accuracy", "deployability": "manual"},
    ],
}


class _DocsDetector:
    """Finds one signal, so that every signal field shows up in the output."""

    name = "docs.example"

    def detect(self, session: SessionData, context: DetectContext) -> Iterator[Signal]:
        if session.session_id == "conv-booking-001":
            yield Signal("docs_example", "friction", 0.5, "for the docs", self.name, (5,))


class _DocsPlugin:
    @hookimpl
    def register_detectors(self) -> list[_DocsDetector]:
        return [_DocsDetector()]


def _field_names(value: Any) -> set[str]:
    """Every key in a JSON value, nested ones included, except inside free-form values."""
    if isinstance(value, list):
        return set().union(*(_field_names(v) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    names = set(value)
    for key, item in value.items():
        if key in KEYED and isinstance(item, dict):
            names |= _field_names(list(item.values()))
        elif key not in OPAQUE:
            names |= _field_names(item)
    return names


@pytest.fixture(scope="module")
def json_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ``--json`` output of every command that has it, run on the bundled examples."""
    folder = tmp_path_factory.mktemp("docs")
    bad = folder / "bad.jsonl"
    bad.write_text('{"session_id": "ok", "messages": []}\n{"session_id": "bad"}\n')
    artifacts = folder / "artifacts"
    artifacts.mkdir()
    (artifacts / "config.json").write_text('{"model": "gpt-4.1-mini", "temperature": 0.2}')
    cycle = folder / "cycle.json"
    cycle.write_text(json.dumps(CYCLE))
    outputs: dict[str, Any] = {}
    plugins = plugin_manager()
    plugins.register(_DocsPlugin(), name="tests.docs")
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key in [k for k in os.environ if k.startswith("TIGHTEN_")]:
                mp.delenv(key)
            mp.setenv("TIGHTEN_HOME", str(folder / "home"))
            for command_path, args in RUNS.items():
                if command_path == "tighten review poll":  # the console reads piped stdin
                    mp.setattr(sys, "stdin", io.StringIO("status\n"))
                argv = ["--db", str(folder / "docs.db"), *args, "--json"]
                argv = [a.format(bad=bad, artifacts=artifacts, cycle=cycle) for a in argv]
                outputs[command_path] = _run_json(argv)
    finally:
        plugins.unregister(name="tests.docs")
    return outputs


def _run_json(argv: list[str]) -> Any:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0, f"tighten {' '.join(argv)} exited {code}"
    return json.loads(out.getvalue())


def test_every_command_with_json_is_run_here() -> None:
    assert sorted(RUNS) == JSON_COMMANDS, "add the new command to RUNS"


@pytest.mark.parametrize("command_path", JSON_COMMANDS)
def test_every_json_field_is_documented(command_path: str, json_outputs: dict[str, Any]) -> None:
    section = _section_of(command_path)
    names = _field_names(json_outputs[command_path])
    assert names, f"`{command_path} --json` printed no fields"
    missing = sorted(n for n in names if f"`{n}`" not in section)
    assert not missing, f"docs/cli.md, section of `{command_path}`, lacks fields {missing}"


# -- settings, hooks, tables ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_configuration_md(name: str) -> None:
    text = (DOCS / "configuration.md").read_text()
    assert f"`{name}`" in text, f"docs/configuration.md does not document `{name}`"
    variable = f"TIGHTEN_{name.upper()}"
    assert variable in text, f"docs/configuration.md does not name {variable}"


def _hookspecs() -> list[str]:
    return sorted(
        name
        for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(obj, "tighten_spec")
    )


def test_hookspecs_are_found() -> None:
    assert "register_trace_formats" in _hookspecs()


@pytest.mark.parametrize("name", _hookspecs())
def test_every_hook_is_in_plugins_md(name: str) -> None:
    headings = {
        line.strip("#` ").strip()
        for line in _prose_lines((DOCS / "plugins.md").read_text())
        if line.startswith("### ")
    }
    assert name in headings, f"docs/plugins.md needs a '### `{name}`' heading"


@pytest.mark.parametrize("table", sorted(metadata.tables))
def test_every_table_is_in_storage_md(table: str) -> None:
    headings = {
        line.strip("#` ").strip()
        for line in _prose_lines((DOCS / "storage.md").read_text())
        if line.startswith("### ")
    }
    assert table in headings, f"docs/storage.md needs a '### `{table}`' heading"


# -- links ----------------------------------------------------------------------------------


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "index.md":
            assert f"]({page.name})" in index, f"docs/index.md does not link {page.name}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for line in _prose_lines(path.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            is_doc = bool(anchor) and linked.suffix == ".md"
            if not linked.exists() or (is_doc and anchor not in _anchors(linked)):
                broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)} has broken links: {broken}"


# -- detection ------------------------------------------------------------------------------

DETECTION = DOCS / "detection.md"
DETECTOR_NAMES = sorted(d.name for d in builtin_detectors())
METRIC_COLUMNS = [c.name for c in metadata.tables["session_metrics"].columns]


def _detection_section(heading: str) -> str:
    """A level-2 section of docs/detection.md."""
    sections = _sections(DETECTION)
    assert heading in sections, f"docs/detection.md needs a '## {heading}' heading"
    return sections[heading]


def _has_row(section: str, name: str) -> bool:
    """True when a table row of ``section`` starts with ``name`` in backticks."""
    return re.search(rf"^\| `{re.escape(name)}` \|", section, re.MULTILINE) is not None


def test_detection_lists_are_found() -> None:
    assert "rules.tool_failure" in DETECTOR_NAMES
    assert len(DETECTOR_NAMES) == len(set(DETECTOR_NAMES)), "two detectors share a name"
    assert "tool_failure" in FEATURES
    assert "friction_score" in METRIC_COLUMNS


@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_every_builtin_detector_is_in_detection_md(name: str) -> None:
    section = _detection_section("Built-in detectors")
    assert _has_row(section, name), (
        f"docs/detection.md, section 'Built-in detectors', needs a table row for `{name}`"
    )


@pytest.mark.parametrize("feature", FEATURES)
def test_every_score_feature_is_in_detection_md(feature: str) -> None:
    section = _detection_section("The friction score")
    assert _has_row(section, feature), (
        f"docs/detection.md, section 'The friction score', needs a table row for `{feature}`"
    )


@pytest.mark.parametrize("column", METRIC_COLUMNS)
def test_every_session_metrics_column_is_in_detection_md(column: str) -> None:
    section = _detection_section("Per-session metrics")
    assert _has_row(section, column), (
        f"docs/detection.md, section 'Per-session metrics', needs a table row for `{column}`"
    )
