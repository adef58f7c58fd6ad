"""Where schema ids come from: the embedded catalog, or a Confluent-compatible Schema Registry."""
from __future__ import annotations

import threading
from typing import Any, Protocol

from .catalog import SchemaCatalog, SchemaVersion, load_catalog, parse


class SchemaResolver(Protocol):
    def writer_id(self, name: str) -> int:
        """The id to frame a new record of ``name`` with."""

    def schema_for_id(self, schema_id: int) -> Any | None:
        """The parsed writer schema for ``schema_id``, or None if unknown."""


class EmbeddedResolver:
    """Ids straight from ``registry.json``: every process agrees without a registry server."""

    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or load_catalog()

    def writer_id(self, name: str) -> int:
        return self.catalog.latest(name).id

    def schema_for_id(self, schema_id: int) -> Any | None:
        v = self.catalog.by_id(schema_id)
        return v.parsed if v else None


class RegistryResolver:
    """Registers the catalog's latest versions under RecordNameStrategy subjects.

    Subjects are the record's full name (``agentstream.v1.Event``) rather than the topic name,
    because the raw and events topics share one schema and topic names carry a prefix.
    """

    def __init__(
        self, url: str, catalog: SchemaCatalog | None = None, client: Any = None, **conf: Any
    ) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.catalog = catalog or load_catalog()
        # new_client() returns the in-memory mock for mock:// URLs, used by the tests.
        self.client = client or SchemaRegistryClient.new_client({"url": url, **conf})
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, Any] = {}
        self._lock = threading.Lock()

    def register_all(self) -> dict[str, int]:
        """Registers every version in order, so the registry's compatibility check sees each step."""
        from confluent_kafka.schema_registry import Schema

        for name in self.catalog.names():
            for v in self.catalog.versions(name):
                sid = self.client.register_schema(name, Schema(v.text, "AVRO"))
                self._remember(sid, v)
                self._ids[name] = sid
        return dict(self._ids)

    def writer_id(self, name: str) -> int:
        sid = self._ids.get(name)
        if sid is None:
            from confluent_kafka.schema_registry import Schema

            v = self.catalog.latest(name)
            with self._lock:
                sid = self.client.register_schema(name, Schema(v.text, "AVRO"))
                self._remember(sid, v)
                self._ids[name] = sid
        return sid

    def schema_for_id(self, schema_id: int) -> Any | None:
        parsed = self._schemas.get(schema_id)
        if parsed is None:
            try:
                schema = self.client.get_schema(schema_id)
            except Exception:  # noqa: BLE001 - unknown id or registry down: the caller DLQs it
                return None
            parsed = parse(schema.schema_str)
            self._schemas[schema_id] = parsed
        return parsed

    def _remember(self, sid: int, v: SchemaVersion) -> None:
        self._schemas[sid] = v.parsed


def make_resolver(registry_url: str | None, **conf: Any) -> SchemaResolver:
    return RegistryResolver(registry_url, **conf) if registry_url else EmbeddedResolver()
