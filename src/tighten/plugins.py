"""The plugin manager: built-ins and installed packages register through one set of hooks."""

from __future__ import annotations

from functools import cache

import pluggy

from tighten import hookspecs

__all__ = ["plugin_manager"]


@cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-ins and ``tighten`` entry points loaded."""
    pm = pluggy.PluginManager("tighten")
    pm.add_hookspecs(hookspecs)
    from tighten.registry import backends
    from tighten.review.channels import registry as channels
    from tighten.signals import detectors
    from tighten.traces import formats

    pm.register(formats, name="tighten.builtin_formats")
    pm.register(detectors, name="tighten.builtin_detectors")
    pm.register(backends, name="tighten.builtin_registries")
    pm.register(channels, name="tighten.builtin_channels")
    pm.load_setuptools_entrypoints("tighten")
    return pm
