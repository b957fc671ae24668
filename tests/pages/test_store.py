"""The generation manifest's strict parser: what it refuses, in one line each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from railguard.backup.manifest import BadManifest
from railguard.pages.store import GenerationManifest, objects_of

from pages.conftest import Generations, as_format_1


@pytest.mark.parametrize(("change", "reason"), [
    ({"page_size": "4096"}, "page_size: Input should be a valid integer (got a string)"),
    ({"verified": 1}, "verified: Input should be a valid boolean (got a number)"),
    ({"page_list": "abc"}, "page_list: not a sha256 in lower-case hex: 'abc'"),
    ({"page_list": None}, "page_list: missing"),
    ({"packs": "ab"}, "packs: Input should be a valid list (got a string)"),
    ({"pages": ["A" * 64]}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"pages": [" " * 64]}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"pages": [1]}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"pages": "ab"}, "pages: not a list of sha256 digests in lower-case hex"),
    ({"page_size": 1000}, "page_size: not a SQLite page size: 1000"),
    ({"created_at": "2026-12-01 14:00"}, "created_at: '2026-12-01 14:00' has no UTC offset"),
    ({"packs": ["../../etc/passwd"]}, "packs.0: not a sha256 in lower-case hex: '../../etc/passwd'"),
    ({"kind": "file"}, "kind 'file' format 2: not a generation of format 1 or 2"),
    ({"format": 3}, "kind 'pages' format 3: not a generation of format 1 or 2"),
    ({"name": 5, "source": None}, "name: Input should be a valid string (got a number) (and 1 more)"),
])
def test_a_manifest_that_cannot_be_trusted_is_refused_with_its_reason(generations: Generations,
                                                                       change: dict[str, object],
                                                                       reason: str) -> None:
    result = generations.take()
    format_1 = "pages" in change
    document = json.loads((as_format_1(generations.store, result.manifest) if format_1 else result.path).read_bytes())
    document.update(change)
    document = {key: value for key, value in document.items() if value is not None or key in ("source", "app")}
    if format_1 and isinstance(document["pages"], list):
        document["page_count"] = len(document["pages"])
    with pytest.raises(BadManifest) as refused:
        GenerationManifest.parse(json.dumps(document))
    assert str(refused.value) == reason


def test_a_page_count_that_disagrees_with_the_inline_list_is_refused(generations: Generations) -> None:
    result = generations.take()
    document = json.loads(as_format_1(generations.store, result.manifest).read_bytes())
    document["page_count"] += 1
    with pytest.raises(BadManifest, match=r"^pages: \d+ digests for page_count \d+$"):
        GenerationManifest.parse(json.dumps(document))
    del document["pages"]
    with pytest.raises(BadManifest, match=r"^pages: missing$"):
        GenerationManifest.parse(json.dumps(document))


def test_listing_generations_imports_no_pydantic(generations: Generations) -> None:
    """The parser is the table of plain checks backup/manifest.py's manifests use: listing a store
    costs the reading, not pydantic's import and a validator's schema."""
    generations.take()
    script = ("import sys; from pathlib import Path; from railguard.pages.catalog import list_generations; "
              "records = list_generations(Path(sys.argv[1]), 'tasks'); "
              "assert [record.is_good for record in records] == [True], records; "
              "print(sorted({name.split('.')[0] for name in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", script, str(generations.settings.directory)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "'pydantic'" not in result.stdout and "'railguard'" in result.stdout


def test_objects_of_names_every_file_a_generation_needs_and_each_is_in_the_store(generations: Generations) -> None:
    manifest = generations.take().manifest
    objects = objects_of(manifest)
    assert objects and len(objects) == len(manifest.packs) + 1  # the packs and the page list
    for relative in objects:
        assert (generations.store / relative).is_file(), relative
