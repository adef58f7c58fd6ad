"""Where schema ids come from: the embedded catalog, or a Confluent-compatible Schema Registry."""
from __future__ import annotations

from typing import Any, Protocol, cast

from .catalog import SchemaCatalog, load_catalog, parse
from .registry_sync import SchemaIdMismatch, check_ids, register


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
    """Ids from a Confluent-compatible Schema Registry, which must hold the catalog's own ids.

    Records written before a registry existed carry the built-in ids, so the registry is brought
    to them (``register_all``, i.e. ``agentstream schemas register``) and every process checks it
    on start: a registry answering an id with another schema makes the constructor raise
    ``SchemaIdMismatch`` rather than frame records that readers would misread.
    """

    def __init__(
        self, url: str, catalog: SchemaCatalog | None = None, client: Any = None, *,
        verify: bool = True, **conf: Any
    ) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.catalog = catalog or load_catalog()
        # new_client() returns the in-memory mock for mock:// URLs, used by the unit tests.
        self.client = client or SchemaRegistryClient.new_client({"url": url, **conf})
        self._schemas: dict[int, Any] = {}
        if verify:
            problems = check_ids(self.client, self.catalog)
            if problems:
                raise SchemaIdMismatch(problems)

    def register_all(self, strategy: str = "record_name", prefix: str = "agentstream.") -> dict[str, int]:
        """Imports every catalog version under its built-in id (see ``registry_sync.register``);
        returns each record name's newest id, the one writers frame with."""
        register(self.client, self.catalog, strategy, prefix)
        return {name: self.catalog.latest(name).id for name in self.catalog.names()}

    def writer_id(self, name: str) -> int:
        # checked on construction: the registry's id for this version is the built-in one
        return self.catalog.latest(name).id

    def schema_for_id(self, schema_id: int) -> Any | None:
        v = self.catalog.by_id(schema_id)
        if v is not None:
            return v.parsed
        parsed = self._schemas.get(schema_id)
        if parsed is None:
            # another producer's schema: only the registry knows it
            try:
                schema = self.client.get_schema(schema_id)
            except Exception:  # noqa: BLE001 - unknown id or registry down: the caller DLQs it
                return None
            parsed = parse(cast(str, schema.schema_str))
            self._schemas[schema_id] = parsed
        return parsed


def make_resolver(registry_url: str | None, **conf: Any) -> SchemaResolver:
    return RegistryResolver(registry_url, **conf) if registry_url else EmbeddedResolver()
