"""Bringing a Confluent-compatible Schema Registry to the catalog's ids, and checking it holds them.

Records written without a registry carry the built-in ids of ``registry.json``; a registry
configured later must answer those same ids with the same schemas, or every consumer that looks
an id up (Confluent's ``AvroDeserializer``, ksqlDB, Connect) reads old records with the wrong
schema. So ``register`` imports each catalog version under its built-in id (the registry's
IMPORT mode, as Confluent's own migration tooling does), and ``check_ids`` reads every id back
and names each mismatch; the services refuse to start on one.

Subjects: ``topic_name`` is Confluent's default TopicNameStrategy (``<topic>-value``, one subject
per topic: Event under ``<prefix>raw-value`` and ``<prefix>events-value``), ``record_name`` is
RecordNameStrategy (the record's full name, ``agentstream.v1.Event``). A registry gives one
schema one id across subjects, so both strategies end with the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastavro.schema import to_parsing_canonical_form

from .catalog import SchemaCatalog, SchemaVersion, load_catalog, parse
from .topics import TOPICS, topic_name

STRATEGIES = ("topic_name", "record_name")
# Confluent's REST error codes (the JSON body's error_code) this module reacts to.
SUBJECT_NOT_FOUND = 40401
SCHEMA_NOT_FOUND = 40403


class SchemaIdMismatch(RuntimeError):
    """The registry does not hold the catalog's ids; ``problems`` names each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the Schema Registry does not hold agentstream's schema ids: " + "; ".join(problems))
        self.problems = problems


def subjects_for(name: str, strategy: str = "record_name", prefix: str = "agentstream.") -> list[str]:
    """The subjects a record schema is registered under."""
    if strategy == "record_name":
        return [name]
    if strategy == "topic_name":
        return [f"{topic_name(s.logical, prefix)}-value" for s in TOPICS.values() if s.value_schema == name]
    raise ValueError(f"subject strategy must be one of {STRATEGIES}, not {strategy!r}")


def fingerprint(schema_text: str) -> str:
    """What makes two schema texts the same schema: Avro's parsing canonical form (full names,
    no docs or whitespace), the form Avro's schema fingerprints are taken over."""
    return to_parsing_canonical_form(parse(schema_text))


def _not_found(exc: Exception) -> bool:
    """A SchemaRegistryError saying "no such subject/schema" (HTTP 404; Confluent's server
    answers 40401/40403, the client's in-memory mock 40400)."""
    return getattr(exc, "http_status_code", None) == 404 or \
        getattr(exc, "error_code", None) in (SUBJECT_NOT_FOUND, SCHEMA_NOT_FOUND)


@dataclass
class Registration:
    """What ``register`` did, per subject: versions imported with their built-in ids, versions
    registered the ordinary way (the registry refused IMPORT), and versions already there."""

    imported: dict[str, list[int]] = field(default_factory=dict)
    registered: dict[str, list[int]] = field(default_factory=dict)
    present: dict[str, list[int]] = field(default_factory=dict)


def _registered_ids(client: Any, subject: str) -> dict[int, str]:
    """Schema id -> fingerprint of every version under ``subject`` (empty for a new subject)."""
    try:
        versions = client.get_versions(subject)
    except Exception as exc:  # SchemaRegistryError; a new subject is not an error
        if _not_found(exc):
            return {}
        raise
    out = {}
    for n in versions:
        rs = client.get_version(subject, n)
        out[rs.schema_id] = fingerprint(rs.schema.schema_str)
    return out


def _import(client: Any, subject: str, v: SchemaVersion, version_free: bool) -> None:
    """POST the version with its id (IMPORT mode). The Python client has no argument for the id,
    so the request goes through its REST client, which carries its URL, auth and TLS settings."""
    body: dict[str, Any] = {"schema": v.text, "schemaType": "AVRO", "id": v.id}
    if version_free:
        body["version"] = v.version
    client._rest_client.post(f"subjects/{_quote(subject)}/versions", body=body)


def _quote(subject: str) -> str:
    from urllib.parse import quote

    return quote(subject, safe="")


def register(client: Any, catalog: SchemaCatalog | None = None, strategy: str = "record_name",
             prefix: str = "agentstream.") -> Registration:
    """Makes the registry hold every catalog version under its built-in id, then checks it.

    Per subject, the versions it lacks are imported (mode IMPORT for the subject, then back to
    READWRITE). A registry without IMPORT mode gets them registered the ordinary way, in order,
    and the check below then tells whether the ids it chose happen to agree. Raises
    ``SchemaIdMismatch`` when the registry ends up holding other ids."""
    catalog = catalog or load_catalog()
    done = Registration()
    can_import = True  # until the registry refuses IMPORT mode once
    for name in catalog.names():
        for subject in subjects_for(name, strategy, prefix):
            have = _registered_ids(client, subject)
            missing = [v for v in catalog.versions(name) if have.get(v.id) != fingerprint(v.text)]
            done.present[subject] = [v.id for v in catalog.versions(name) if v not in missing]
            if not missing:
                continue
            can_import = can_import and _try_import(client, subject, missing, version_free=not have)
            if can_import:
                done.imported[subject] = [v.id for v in missing]
            else:
                from confluent_kafka.schema_registry import Schema

                for v in missing:
                    client.register_schema(subject, Schema(v.text, "AVRO"))
                done.registered[subject] = [v.id for v in missing]
    problems = check_ids(client, catalog) + _check_subjects(client, catalog, strategy, prefix)
    if problems:
        raise SchemaIdMismatch(problems)
    return done


def _try_import(client: Any, subject: str, missing: list[SchemaVersion], version_free: bool) -> bool:
    try:
        client.update_mode(subject, "IMPORT", force=True)
    except Exception:  # noqa: BLE001 - no IMPORT mode here (or not allowed): register normally
        return False
    try:
        for v in missing:
            try:
                _import(client, subject, v, version_free)
            except Exception:  # noqa: BLE001 - e.g. the id is taken; check_ids names it after
                continue
    finally:
        client.update_mode(subject, "READWRITE")
    return True


def check_ids(client: Any, catalog: SchemaCatalog | None = None) -> list[str]:
    """Reads every catalog id back from the registry; each id missing or holding another schema
    is one problem. Empty means records framed with built-in ids read right through it."""
    catalog = catalog or load_catalog()
    problems = []
    for name in catalog.names():
        for v in catalog.versions(name):
            try:
                got = client.get_schema(v.id)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                problems.append(f"id {v.id} ({name} v{v.version}) is not in the registry: run "
                                "`agentstream schemas register`")
                continue
            if fingerprint(got.schema_str) != fingerprint(v.text):
                problems.append(f"id {v.id} holds another schema than {name} v{v.version} (a registry "
                                "shared with other producers: give agentstream its own registry or context)")
    return problems


def _check_subjects(client: Any, catalog: SchemaCatalog, strategy: str, prefix: str) -> list[str]:
    problems = []
    for name in catalog.names():
        for subject in subjects_for(name, strategy, prefix):
            have = _registered_ids(client, subject)
            for v in catalog.versions(name):
                if have.get(v.id) != fingerprint(v.text):
                    problems.append(f"subject {subject} lacks {name} v{v.version} under id {v.id} "
                                    f"(it holds ids {sorted(have)})")
    return problems
