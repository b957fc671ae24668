"""``railguard notify test``: send one message through the configured notification URLs."""

from __future__ import annotations

import click

from railguard.cli import output
from railguard.cli.context import Context
from railguard.cli.root import cli
from railguard.errors import ConfigError, ExitCode, RailguardError
from railguard.notify.notifier import KIND_OF_EVENT, notifier_for

pass_context = click.make_pass_decorator(Context)


class NotificationFailed(RailguardError):
    """The notification service did not accept the message (exit 2)."""


@cli.group()
def notify() -> None:
    """Notifications through apprise URLs (Telegram, Discord, e-mail, ntfy, JSON webhooks...)."""


@notify.command("test")
@click.option("--event", type=click.Choice(sorted(KIND_OF_EVENT)), default="test", show_default=True,
              help="Route the message as this event would be routed.")
@click.option("--message", default="railguard test notification: if you can read this, alerts reach you.",
              help="Body of the message.")
@output.json_option
@pass_context
def test_command(ctx: Context, event: str, message: str, as_json: bool) -> int:
    """Send a test message and say whether every URL accepted it.

    The URLs come from the environment variable named by [notifications] urls_env (default
    RAILGUARD_NOTIFY_URLS, or a file named by RAILGUARD_NOTIFY_URLS_FILE); they are never shown.
    """
    settings = ctx.settings()
    notifier = notifier_for(settings)
    source = notifier.source_for(event)
    if source is None:
        raise ConfigError(f"the event {event} is not routed anywhere",
                          hint="Add it to [notifications] events, or give it a [notifications.routes] entry")
    channel = notifier.channel(source)  # a bad URL raises here, with its number and scheme only
    if channel is None:
        raise ConfigError(f"no notification URLs: ${source} is not set",
                          hint=f"Export {source}='tgram://BOT_TOKEN/CHAT_ID' (or {source}_FILE=PATH)")
    delivery = notifier.notify(event, f"railguard: {event}", message, now=ctx.now())
    if as_json:
        output.emit_json({"ok": delivery.status == "sent", **delivery.as_dict(), "schemes": channel.schemes})
    if delivery.status != "sent":
        if as_json:
            return ExitCode.ERROR
        raise NotificationFailed(f"the notification via ${source} failed: {delivery.reason}",
                                 hint="Check the service's URL, token and reachability; the URL is not shown")
    if not as_json:
        click.echo(f"sent {event} via ${source} ({len(channel.schemes)} URL(s): {', '.join(channel.schemes)})")
    return ExitCode.OK
