"""Option C, done safely: the webhook gate (``railguard gate serve``). docs/gate.md

Forgejo's push webhook → :mod:`webhook` (signature, parsing, the decision; pure) →
:mod:`queue` (persistent, newest wins) → :mod:`worker` (fetch, test, statuses via
:mod:`forgejo`, deploy exactly that commit, smoke, rollback, notify). :mod:`app` is the HTTP
surface over :mod:`service`. The sh pre-receive hook that asks the gate to test a push lives with
the other hook in :mod:`railguard.deploy.hook.remote`.
"""

from railguard.gate.queue import Run, RunQueue
from railguard.gate.service import GateService
from railguard.gate.webhook import Delivery, Push, Verdict, decide, parse_delivery, sign, verify_signature

__all__ = ["Delivery", "GateService", "Push", "Run", "RunQueue", "Verdict", "decide", "parse_delivery", "sign",
           "verify_signature"]
