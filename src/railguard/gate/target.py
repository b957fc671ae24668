"""One app behind the gate, its settings checked and resolved once, when the service starts.

A misconfigured app (no ``[apps.NAME]``, no test command, a secret in ``pass_env``) stops
``railguard gate serve`` with the key's name; the workers only ever see resolved targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from railguard.config import AppSettings, GateAppSettings, Settings
from railguard.deploy.pipeline import refuse_secrets_in_pass_env
from railguard.errors import ConfigError


@dataclass
class GateTarget:
    """One app behind the gate, with its settings resolved once."""

    name: str
    app: AppSettings
    gate: GateAppSettings
    test_command: list[str]
    test_timeout: float

    @classmethod
    def resolve(cls, settings: Settings, name: str) -> GateTarget:
        gate = settings.gate.apps[name]
        if name not in settings.apps:
            raise ConfigError(f"[gate.apps.{name}] names no app under [apps]",
                              hint=f"Add [apps.{name}] (with its deploy settings), or rename the gate entry")
        app = settings.apps[name]
        command = gate.test_command if gate.test_command is not None else app.deploy.test_command
        if not command:
            raise ConfigError(f"the gate has no test command for {name}",
                              hint=f'Set test_command = ["bun", "test"] under [gate.apps.{name}] '
                                   f"or [apps.{name}.deploy]")
        refuse_secrets_in_pass_env(gate.pass_env, [
            settings.gate.secret_env, settings.gate.forgejo_token_env, settings.gate.check_secret_env,
            settings.gate.read_token_env, app.deploy.token_env, app.deploy.password_env,
            app.deploy.webhook_token_env, gate.clone_token_env], f"gate.apps.{name}.pass_env")
        timeout = gate.test_timeout or app.deploy.test_timeout
        return cls(name=name, app=app, gate=gate, test_command=list(command), test_timeout=timeout.total_seconds())
