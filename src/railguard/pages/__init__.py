"""Page-level incremental generations: a verified backup that stores only the pages that changed (docs/pages.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from railguard.backup.catalog import Owner
    from railguard.pages.catalog import GenerationRecord

#: The page store of a database ``STEM`` is the directory ``STEM.pages`` in its backup directory
#: (here, not in :mod:`railguard.pages.store`, so a reader can tell whether a store exists
#: without importing the store's validator types).
STORE_SUFFIX = ".pages"


def stored_generations(directory: Path, owner: Owner) -> list[GenerationRecord]:
    """The generations of ``owner`` in ``directory`` (:func:`railguard.pages.catalog.list_generations`),
    none when its database has no page store there: then the store's modules are not even
    imported, so ``status`` and a metrics scrape of a whole-file app never pay for them."""
    if not (directory / f"{owner.stem}{STORE_SUFFIX}").is_dir():
        return []
    from railguard.pages.catalog import list_generations

    return list_generations(directory, owner)
