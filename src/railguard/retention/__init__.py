"""Retention: which backups to keep (restic ``forget`` semantics) and pruning the rest."""

from railguard.retention.policy import Decision, Plan, Policy, apply_policy
from railguard.retention.prune import EmptyPolicy, PruneFailed, PruneResult, plan_prune, prune_backups, prune_generations
from railguard.values import Within

__all__ = [
    "Decision",
    "EmptyPolicy",
    "Plan",
    "Policy",
    "PruneFailed",
    "PruneResult",
    "Within",
    "apply_policy",
    "plan_prune",
    "prune_backups",
    "prune_generations",
]
