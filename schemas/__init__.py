"""The event contract: Avro schemas, the topic catalog and the Confluent-framed codec.

The ``.avsc`` files under ``avro/`` are the single source of truth; ``generated.py`` is derived
from them by ``python -m agentstream.schemas.codegen``.
"""
from .catalog import SchemaCatalog, SchemaVersion, load_catalog
from .codec import Codec, DecodeError, EncodeError
from .registry_sync import SchemaIdMismatch
from .resolvers import EmbeddedResolver, RegistryResolver, make_resolver
from .topics import DLQ_HEADERS, IDEMPOTENT_MAX_IN_FLIGHT, PARTITIONER, TOPICS, TopicSpec, partition_for, topic_name

EVENT = "agentstream.v1.Event"
COMMAND = "agentstream.v1.Command"
ALERT = "agentstream.v1.Alert"
POLICY = "agentstream.v1.Policy"

__all__ = [
    "ALERT",
    "COMMAND",
    "DLQ_HEADERS",
    "EVENT",
    "PARTITIONER",
    "IDEMPOTENT_MAX_IN_FLIGHT",
    "POLICY",
    "TOPICS",
    "Codec",
    "DecodeError",
    "EmbeddedResolver",
    "EncodeError",
    "RegistryResolver",
    "SchemaCatalog",
    "SchemaIdMismatch",
    "SchemaVersion",
    "TopicSpec",
    "load_catalog",
    "make_resolver",
    "partition_for",
    "topic_name",
]
