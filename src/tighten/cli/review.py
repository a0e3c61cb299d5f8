"""``tighten review digest``: a cycle's proposals as the owner reads them. The owner's
reply will get its own sub-command in this group."""

from __future__ import annotations

import os
import sys
from typing import cast

import click
from rich.prompt import Prompt

from tighten.cli.context import AppContext, json_option, pass_app
from tighten.cli.output import console, print_json
from tighten.proposals.add import last_deployed, load_cycle
from tighten.registry.resolve import resolve_registry
from tighten.review.channels.base import Channel
from tighten.review.channels.console import ConsoleChannel
from tighten.review.channels.registry import resolve_channel
from tighten.review.decisions import handle_reply
from tighten.review.digest import FORMATS, Format, LastEffect, render_digest
from tighten.review.send import poll_replies, send_digest

__all__ = ["group"]


@click.group("review", invoke_without_command=True)
@click.option("--cycle", "cycle_id", type=int, help="A cycle id (default: the latest open cycle).")
@click.pass_context
def group(ctx: click.Context, cycle_id: int | None) -> None:
    """Review a cycle of proposals: the digest, and the owner's decisions.

    Without a sub-command: an interactive review in the terminal — the digest, then a
    prompt where you reply as you would in a chat ("deploy all", "remove 3, deploy",
    "show me item 2", "skip — not now"); each reply is carried out and answered, until
    nothing is pending or you type "quit"."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.ensure_object(AppContext)
    _interactive(app, cycle_id)


def _interactive(app: AppContext, cycle_id: int | None) -> None:
    store, settings = app.store(), app.settings()
    with store.connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
        previous = last_deployed(conn, cycle)
    last = [LastEffect(p.number or 0, p.headline, None) for p in previous]
    console.print(
        "\n\n".join(render_digest(cycle, items, last_deployed=last, fmt="text")), markup=False
    )
    registry = resolve_registry(settings, store)
    while True:
        text = Prompt.ask("\n[bold]reply[/] (quit to stop)", console=console, default="quit")
        if text.strip().lower() in ("quit", "q", "exit", ""):
            return
        outcome = handle_reply(
            store, text, approvers=settings.approvers, cycle_id=cycle.cycle_id, registry=registry
        )
        console.print(outcome.message, markup=False)
        with store.connect() as conn:
            _, items = load_cycle(conn, cycle.cycle_id)
        if not any(p.status == "pending" for p in items):
            console.print("Nothing is pending any more in this cycle.")
            return


@group.command("digest")
@click.option("--cycle", "cycle_id", type=int, help="A cycle id (default: the latest open cycle).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for chats and terminals, markdown for Slack and GitHub, html for e-mail "
    "and the web.",
)
@json_option
@pass_app
def digest(app: AppContext, cycle_id: int | None, fmt: str, as_json: bool) -> None:
    """The digest of a cycle: numbered proposals grouped by goal, what was deployed last
    time, and the reply options. Text and markdown come in messages of at most 4,000
    characters (with --json, as the list "parts")."""
    with app.store().connect() as conn:
        cycle, items = load_cycle(conn, cycle_id)
        previous = last_deployed(conn, cycle)
    last = [LastEffect(p.number or 0, p.headline, None) for p in previous]
    parts = render_digest(cycle, items, last_deployed=last, fmt=cast(Format, fmt))
    if as_json:
        print_json(
            {"cycle_id": cycle.cycle_id, "agent": cycle.agent, "format": fmt, "parts": parts}
        )
        return
    click.echo("\n\n".join(part.rstrip("\n") for part in parts))


@group.command("reply")
@click.argument("text")
@click.option("--cycle", "cycle_id", type=int, help="A cycle id (default: the latest open cycle).")
@click.option(
    "--from",
    "sender",
    default="cli",
    show_default=True,
    help="Who sent the reply; must be one of the `approvers` setting (`cli`: this terminal, "
    "allowed when no approvers are set).",
)
@json_option
@pass_app
def reply(app: AppContext, text: str, cycle_id: int | None, sender: str, as_json: bool) -> None:
    """Carry out the owner's reply TEXT to a digest: "deploy all", "deploy 1 and 4",
    "remove 4, deploy", "skip — too risky", "reject 2 because …", "show me item 3",
    "rollback master_prompt", "status". Ambiguous replies are answered with a question
    and change nothing; every decision is recorded with its reason."""
    store, settings = app.store(), app.settings()
    outcome = handle_reply(
        store,
        text,
        sender=sender,
        approvers=settings.approvers,
        cycle_id=cycle_id,
        registry=resolve_registry(settings, store),
    )
    if as_json:
        print_json(outcome.as_dict())
    else:
        click.echo(outcome.message)


@group.command("send")
@click.option("--cycle", "cycle_id", type=int, help="A cycle id (default: the latest open cycle).")
@click.option("--channel", "channel_name", help="A channel (default: the `channel` setting).")
@json_option
@pass_app
def send(app: AppContext, cycle_id: int | None, channel_name: str | None, as_json: bool) -> None:
    """Send the digest of a cycle to the owner's channel (split into messages that fit)."""
    channel = _channel(app, channel_name, as_json)
    sent = send_digest(app.store(), channel, cycle_id=cycle_id)
    if as_json:
        print_json(sent)
    elif channel.name != "console":
        click.echo(
            f"Sent cycle {sent['cycle_id']} to {sent['channel']} in {sent['parts']} messages."
        )


@group.command("poll")
@click.option("--cycle", "cycle_id", type=int, help="A cycle id (default: the latest open cycle).")
@click.option("--channel", "channel_name", help="A channel (default: the `channel` setting).")
@json_option
@pass_app
def poll(app: AppContext, cycle_id: int | None, channel_name: str | None, as_json: bool) -> None:
    """Read the replies that arrived on the channel since the last poll, carry each out
    (only approvers decide), and answer each on the channel. Run it from cron."""
    store, settings = app.store(), app.settings()
    channel = _channel(app, channel_name, as_json)
    handled = poll_replies(
        store, channel, settings=settings, registry=resolve_registry(settings, store),
        cycle_id=cycle_id,
    )  # fmt: skip
    if as_json:
        print_json([h.as_dict() for h in handled])
    elif channel.name != "console":
        click.echo(f"{len(handled)} replies handled.")


def _channel(app: AppContext, name: str | None, as_json: bool) -> Channel:
    """The channel; on the console, a reply is read from standard input when it is piped
    (``echo "deploy all" | tighten review poll --channel console``), and with --json what
    the console prints goes to standard error so that standard output stays JSON."""
    settings = app.settings()
    if (name or settings.channel) == "console":
        piped = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin
        return ConsoleChannel(stream_out=sys.stderr if as_json else None, stream_in=piped)
    return resolve_channel(settings, name, os.environ)
