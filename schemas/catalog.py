"""Loads the embedded schema catalog (``registry.json`` + ``avro/*.avsc``) once per process."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import fastavro


@dataclass(frozen=True)
class SchemaVersion:
    id: int
    name: str
    version: int
    text: str
    parsed: Any = field(repr=False, compare=False)


class SchemaCatalog:
    """Every published schema version, by id and by record name."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_id = {v.id: v for v in versions}
        self._by_name: dict[str, list[SchemaVersion]] = {}
        for v in sorted(versions, key=lambda v: v.version):
            self._by_name.setdefault(v.name, []).append(v)

    def by_id(self, schema_id: int) -> SchemaVersion | None:
        return self._by_id.get(schema_id)

    def latest(self, name: str) -> SchemaVersion:
        try:
            return self._by_name[name][-1]
        except KeyError:
            raise KeyError(f"no schema named {name!r} in the catalog") from None

    def versions(self, name: str) -> list[SchemaVersion]:
        return list(self._by_name.get(name, []))

    def names(self) -> list[str]:
        return sorted(self._by_name)


def parse(text: str) -> Any:
    # Fresh named-type namespace per schema: two versions of Event define the same names.
    return fastavro.parse_schema(json.loads(text), named_schemas={})


@lru_cache(maxsize=1)
def load_catalog() -> SchemaCatalog:
    root = resources.files(__package__)
    meta = json.loads(root.joinpath("registry.json").read_text())
    versions = []
    for entry in meta["schemas"]:
        text = root.joinpath(entry["file"]).read_text()
        versions.append(
            SchemaVersion(entry["id"], entry["name"], entry["version"], text, parse(text))
        )
    return SchemaCatalog(versions)
