"""The generation manifest's strict parser: what it refuses, in one line each."""

from __future__ import annotations

import json

import pytest

from railguard.backup.manifest import BadManifest
from railguard.pages.store import GenerationManifest, objects_of

from pages.conftest import Generations


@pytest.mark.parametrize(("change", "reason"), [
    ({"pages": ["A" * 64]}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"pages": [" " * 64]}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"pages": [1]}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"pages": "ab"}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"page_size": 1000}, "page_size: not a SQLite page size: 1000"),
    ({"created_at": "2026-12-01 14:00"}, "created_at: '2026-12-01 14:00' has no UTC offset"),
    ({"packs": ["../../etc/passwd"]}, "packs.0: not a sha256 in lower-case hex: '../../etc/passwd'"),
    ({"kind": "file"}, "kind 'file' format 1: not a format-1 generation"),
])
def test_a_manifest_that_cannot_be_trusted_is_refused_with_its_reason(generations: Generations,
                                                                       change: dict[str, object],
                                                                       reason: str) -> None:
    document = json.loads(generations.take().path.read_bytes())
    document.update(change)
    if isinstance(document["pages"], list):
        document["page_count"] = len(document["pages"])
    with pytest.raises(BadManifest) as refused:
        GenerationManifest.parse(json.dumps(document))
    assert str(refused.value) == reason


def test_a_page_count_that_disagrees_with_the_list_is_refused(generations: Generations) -> None:
    document = json.loads(generations.take().path.read_bytes())
    document["page_count"] += 1
    with pytest.raises(BadManifest, match=r"^pages: \d+ digests for page_count \d+$"):
        GenerationManifest.parse(json.dumps(document))


def test_objects_of_names_every_file_a_generation_needs_and_each_is_in_the_store(generations: Generations) -> None:
    manifest = generations.take().manifest
    objects = objects_of(manifest)
    assert objects and len(objects) == len(manifest.packs)
    for relative in objects:
        assert (generations.store / relative).is_file(), relative
