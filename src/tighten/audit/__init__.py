"""The audit log: an append-only record of every change of state."""

from tighten.audit.log import record

__all__ = ["record"]
