"""Deploys rehearsed on the real data, and rollback that covers the data (docs/deploy.md).

The one package that joins the data side (backups, restore, drills) to the deploy side (the
pipeline, the monitor): the layers in pyproject.toml keep each side ignorant of the other, so
what needs both lives here, above both, and is handed to the pipeline as steps
(:func:`railguard.rehearsal.steps.deploy_steps`) by the CLI and by ``railguard gate serve``.
"""
