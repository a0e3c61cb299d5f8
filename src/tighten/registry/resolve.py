"""Choosing the registry backend from the ``registry`` setting (``scheme[:target]``)."""

from __future__ import annotations

from tighten.config import Settings
from tighten.errors import ConfigError
from tighten.plugins import plugin_manager
from tighten.registry.base import Registry, RegistryFactory
from tighten.store import Store

__all__ = ["registry_factories", "resolve_registry"]


def registry_factories() -> dict[str, RegistryFactory]:
    """Every registered backend by scheme; a later registration replaces an earlier one."""
    found: dict[str, RegistryFactory] = {}
    for group in reversed(plugin_manager().hook.register_registries()):
        found.update(group)
    return found


def resolve_registry(settings: Settings, store: Store) -> Registry:
    scheme, _, target = settings.registry.partition(":")
    factories = registry_factories()
    if scheme not in factories:
        known = ", ".join(sorted(factories))
        raise ConfigError(f"Unknown registry {scheme!r}: use one of {known} (setting `registry`).")
    return factories[scheme](target, settings, store)
