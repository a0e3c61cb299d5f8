"""Errors raised by tighten.

Every error a user can cause or fix is a :class:`TightenError`; its message says what
happened and what to do, in one line. The CLI prints it and exits 1; nothing else does.

    TightenError
    ├── ConfigError        a setting is missing or invalid
    ├── StoreError         the database cannot be opened, migrated or written
    └── InputError         input that cannot be read at all (not one bad record: those
                           are quarantined as rejects and never raise)
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "StoreError", "TightenError"]


class TightenError(Exception):
    """Base class of every error tighten raises on purpose."""


class ConfigError(TightenError):
    """A setting is missing or has an invalid value."""


class StoreError(TightenError):
    """The database cannot be opened, migrated or written."""


class InputError(TightenError):
    """An input cannot be read at all (missing file, unknown format)."""
