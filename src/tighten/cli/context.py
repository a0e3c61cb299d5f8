"""What every command gets from the global options."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from tighten.config import Settings
from tighten.store import Store, open_store

__all__ = ["AppContext", "json_option", "pass_app"]


@dataclass
class AppContext:
    """Built once by the root command from the global options."""

    database_url: str | None = None
    _store: Store | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load(database_url=self.database_url)
        return self._settings

    def store(self, *, migrate: bool = True) -> Store:
        if self._store is None:
            self._store = open_store(self.settings(), migrate=migrate)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(AppContext, ensure=True)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (a stable shape).")
