"""Retention tests import their helpers from conftest_helpers (a plain module beside this file)."""
