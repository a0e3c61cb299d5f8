"""Built-in detectors, one small module each. Every module lists its detectors in a
module-level ``DETECTORS``; they register through the same hook as a plugin's."""

from __future__ import annotations

import importlib
import pkgutil

from tighten.hookspecs import hookimpl
from tighten.signals.model import Detector, WindowDetector

__all__ = ["builtin_detectors", "register_detectors"]


def builtin_detectors() -> list[Detector | WindowDetector]:
    found: list[Detector | WindowDetector] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "DETECTORS", ()))
    return found


@hookimpl
def register_detectors() -> list[Detector | WindowDetector]:
    return builtin_detectors()
