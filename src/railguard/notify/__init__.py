"""Signals to the outside: notifications (apprise behind one adapter, routed per event,
idempotent where asked), heartbeat pings (:mod:`railguard.notify.heartbeat`) and the watch that
sends both around a job run (:mod:`railguard.notify.watch`).

``Notifier.notify(event, title, body, key=...)`` never raises for a delivery problem: a
failing notification is logged and counted, and the job that sent it goes on.
"""

from railguard.notify.channel import AppriseChannel, ChannelError, split_urls
from railguard.notify.notifier import Delivery, Notifier
from railguard.notify.sent import SentLog

__all__ = ["AppriseChannel", "ChannelError", "Delivery", "Notifier", "SentLog", "split_urls"]
