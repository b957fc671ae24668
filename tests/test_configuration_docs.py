"""docs/configuration.md names every key of the configuration model (docs that cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args, get_origin

from pydantic import BaseModel

from railguard.config import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def models(root: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []

    def visit(annotation: object) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
                for field in annotation.model_fields.values():
                    visit(field.annotation)
        for arg in get_args(annotation) if get_origin(annotation) is not None else ():
            visit(arg)

    visit(root)
    return found


def test_every_configuration_key_is_documented():
    text = DOCS.read_text()
    missing = []
    for model in models(Settings):
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            key = re.escape(name)
            # a key (`name`, name = ...) or a section ([name], [apps.NAME.name], [[monitor.name]])
            if not re.search(rf"`{key}`|\b{key} =|[\[.]{key}\]", text):
                missing.append(f"{model.__name__}.{name}")
    assert missing == [], f"keys missing from docs/configuration.md: {missing}"
