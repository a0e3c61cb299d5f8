"""``tighten db upgrade`` and ``tighten db status``."""

from __future__ import annotations

import click

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, print_json

__all__ = ["group"]


@click.group("db")
def group() -> None:
    """Create, upgrade and inspect the database."""


@group.command()
@json_option
@pass_app
def upgrade(app: AppContext, as_json: bool) -> None:
    """Create the schema, or upgrade it to this version of tighten (safe to repeat)."""
    store = app.store(migrate=False)
    before, after = store.upgrade()
    if as_json:
        print_json({"before": before, "after": after, "dialect": store.dialect})
    elif before == after:
        console.print(f"The database is up to date (revision {after}, {store.dialect}).")
    else:
        console.print(
            f"Upgraded the database from {before or 'empty'} to {after} ({store.dialect})."
        )


@group.command()
@json_option
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """The database's URL, dialect and schema revision."""
    store = app.store(migrate=False)
    current, head = store.current_revision(), store.head_revision()
    data = {
        "url": store.engine.url.render_as_string(hide_password=True),
        "dialect": store.dialect,
        "revision": current,
        "head": head,
        "up_to_date": current == head,
    }
    if as_json:
        print_json(data)
        return
    state = "up to date" if current == head else "needs `tighten db upgrade`"
    console.print(f"{data['url']} ({store.dialect}): revision {current or 'none'}, {state}.")
