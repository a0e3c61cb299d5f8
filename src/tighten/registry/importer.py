"""``tighten artifacts import``: a folder of files (one artifact each) or one manifest.

A file's name (without extension) is the artifact's name; its kind comes from the
extension and name: ``.json``/``.yaml`` are ``config`` unless the name says ``soul`` or
``tool``; ``.md``/``.txt`` are ``playbook`` unless the name says ``prompt`` or
``system``. A manifest (``tighten-artifacts.yaml`` or ``.json``) lists artifacts with
``name``, ``kind``, ``file`` and, optionally, ``required_placeholders`` and
``human_only``. A new artifact's first version goes to the ``production`` label when it
passes the guardrails; later imports add versions without moving labels (deploy them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tighten.errors import InputError
from tighten.registry.artifacts import add_version, deploy, ensure_artifact, label_versions
from tighten.registry.guardrails import Limits
from tighten.store import Store

__all__ = ["ImportReport", "import_artifacts"]

MANIFESTS = ("tighten-artifacts.yaml", "tighten-artifacts.yml", "tighten-artifacts.json")
SUFFIXES = (".md", ".txt", ".json", ".yaml", ".yml")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "new_versions": self.new_versions,
            "unchanged": self.unchanged,
            "refused": self.refused,
        }


def _kind_of(path: Path) -> str:
    name = path.stem.lower()
    if path.suffix in (".json", ".yaml", ".yml"):
        return "soul" if "soul" in name else "tool" if "tool" in name else "config"
    return "prompt" if "prompt" in name or "system" in name else "playbook"


def _entries(path: Path) -> list[dict[str, Any]]:
    if path.is_file() and path.name in MANIFESTS:
        return _manifest(path)
    if path.is_file():
        return [{"name": path.stem, "kind": _kind_of(path), "file": path}]
    if not path.is_dir():
        raise InputError(f"No such file or folder: {path}.")
    manifest = next((path / m for m in MANIFESTS if (path / m).is_file()), None)
    if manifest is not None:
        return _manifest(manifest)
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise InputError(f"{path} holds no .md, .txt, .json or .yaml files to import.")
    return [{"name": p.stem, "kind": _kind_of(p), "file": p} for p in files]


def _manifest(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InputError(f"Cannot read the manifest {path}: {exc}.") from None
    items = data.get("artifacts") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f"The manifest {path} must list artifacts (a list, or under `artifacts`).")
    entries = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name") or not item.get("file"):
            raise InputError(f"Manifest item {i + 1} in {path} needs a name and a file.")
        file = path.parent / str(item["file"])
        entries.append({**item, "file": file, "kind": item.get("kind") or _kind_of(file)})
    return entries


def import_artifacts(
    store: Store,
    agent: str,
    path: str | Path,
    *,
    author: str = "import",
    reason: str | None = None,
    limits: Limits | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Import artifacts from ``path``; each artifact in its own transaction."""
    now = now or datetime.now(UTC)
    report = ImportReport()
    for entry in _entries(Path(path)):
        try:
            content = Path(entry["file"]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"Cannot read {entry['file']}: {exc}.") from None
        name = str(entry["name"])
        with store.begin() as conn:
            artifact = ensure_artifact(
                conn, agent, name, str(entry["kind"]),
                required_placeholders=entry.get("required_placeholders") or (),
                human_only=bool(entry.get("human_only", False)),
                json_schema=entry.get("schema"), now=now,
            )  # fmt: skip
            first = not label_versions(conn, artifact)
            version, created = add_version(
                conn, artifact, content, author=author, reason=reason, now=now
            )
        if not created:
            report.unchanged.append(name)
            continue
        (report.created if version.number == 1 else report.new_versions).append(name)
        if first:
            result = deploy(store, agent, name, version.number, actor=author,
                            reason=reason or "first import", limits=limits, now=now)  # fmt: skip
            if not result.ok:
                report.refused[name] = list(result.failures)
    return report
