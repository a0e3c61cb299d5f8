"""The ``tighten`` command: global options, the sub-commands, and the one place where a
:class:`~tighten.errors.TightenError` becomes a one-line message and exit status 1."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tighten import __version__
from tighten.cli import (
    analysis,
    artifacts,
    db,
    demo,
    proposals,
    rejects,
    review,
    sessions,
    signals,
    traces,
)
from tighten.cli.context import AppContext
from tighten.cli.output import err_console
from tighten.errors import TightenError

__all__ = ["cli", "main"]


@click.group(
    help="A self-improvement loop for LLM agents: ingest traces, find friction, "
    "propose changes, review, deploy, verify.",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--db",
    "db_option",
    metavar="PATH|URL",
    help="Database: a SQLite file path or a URL (sqlite:///…, postgresql://…). "
    "Default: $TIGHTEN_DATABASE_URL, else $TIGHTEN_HOME/tighten.db.",
)
@click.version_option(__version__, prog_name="tighten")
@click.pass_context
def cli(ctx: click.Context, db_option: str | None) -> None:
    url = None
    if db_option is not None:
        url = db_option if "://" in db_option else f"sqlite:///{Path(db_option).resolve()}"
    ctx.obj = AppContext(database_url=url)
    ctx.call_on_close(ctx.obj.close)


cli.add_command(traces.ingest)
cli.add_command(traces.stats)
cli.add_command(signals.detect)
cli.add_command(signals.group)
cli.add_command(analysis.calibrate)
cli.add_command(analysis.postmortem)
cli.add_command(analysis.eval_group)
cli.add_command(sessions.group)
cli.add_command(rejects.group)
cli.add_command(artifacts.group)
cli.add_command(proposals.group)
cli.add_command(review.group)
cli.add_command(db.group)
cli.add_command(demo.demo)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. As a script it exits with the status; with ``argv`` it returns it."""
    try:
        returned = cli.main(args=argv, prog_name="tighten", standalone_mode=False)
    except TightenError as exc:
        click.echo(f"Error: {exc}", err=True)
        code = 1
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Abort:
        err_console.print("Aborted.")
        code = 130
    except BrokenPipeError:
        code = 0
    else:
        # Without standalone mode, click returns the code of a raised Exit.
        code = returned if isinstance(returned, int) else 0
    if argv is None:
        sys.exit(code)
    return code
