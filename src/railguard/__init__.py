"""railguard: verified SQLite backups, deploy guardrails and early failure detection for
small self-hosted apps.

Keep this module free of imports: ``railguard.probe`` runs every Docker healthcheck interval
and must start with the standard library alone.
"""

__version__ = "0.1.0"
