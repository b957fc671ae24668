"""Page-level incremental generations: a verified backup that stores only the pages that changed (docs/pages.md)."""
