"""Page-level incremental generations: a verified backup that stores only the pages that changed (docs/pages.md)."""

#: The page store of a database ``STEM`` is the directory ``STEM.pages`` in its backup directory
#: (here, not in :mod:`railguard.pages.store`, so a reader can tell whether a store exists
#: without importing the store's validator types).
STORE_SUFFIX = ".pages"
