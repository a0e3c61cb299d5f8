"""Every extension point of tighten, one hook each.

A package adds its own parts by exposing a module under the ``tighten`` entry-point group
(``[project.entry-points.tighten]``) that implements any of these hooks with
``@tighten.hookimpl``. Built-in parts register through the same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from tighten.registry.base import RegistryFactory
    from tighten.review.channels.registry import ChannelFactory
    from tighten.signals.model import Detector, WindowDetector
    from tighten.traces.formats.base import TraceFormat

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("tighten")
hookimpl = pluggy.HookimplMarker("tighten")


@hookspec
def register_trace_formats() -> list[TraceFormat]:  # type: ignore[empty-body]
    """Return input formats (objects with ``name``, ``sniff(head)`` and
    ``read(stream, context)``) that ``tighten ingest`` can detect and read. Formats are
    tried by their ``priority`` (lower first); the first whose ``sniff`` accepts the
    beginning of the input reads it."""


@hookspec
def register_detectors() -> list[Detector | WindowDetector]:  # type: ignore[empty-body]
    """Return detectors: objects with a unique ``name`` and either
    ``detect(session, context)`` (per session) or ``detect_window(agent, sessions,
    context)`` (over an agent's window). See :mod:`tighten.signals.model` for the
    contracts. A detector whose ``name`` repeats an earlier one replaces it, so a plugin
    can override a built-in."""


@hookspec
def register_registries() -> dict[str, RegistryFactory]:  # type: ignore[empty-body]
    """Return registry backends by scheme: ``{"git": factory}``. A factory is called as
    ``factory(target, settings, store)`` for the ``registry`` setting ``scheme:target``
    (``target`` may be empty) and returns an object with ``fetch``, ``publish``,
    ``move_label`` and ``versions`` (see :class:`tighten.registry.base.Registry`)."""


@hookspec
def register_channels() -> dict[str, ChannelFactory]:  # type: ignore[empty-body]
    """Return channels by name: ``{"telegram": factory}``. A factory is called as
    ``factory(options, env, state_dir)`` — the channel's options from the ``channels``
    setting, the environment (where tokens live) and a folder for its polling state —
    and returns an object with ``send``, ``poll`` and ``parse_webhook`` (see
    :class:`tighten.review.channels.base.Channel`)."""
