"""Every schema version must read data written by the version before it (BACKWARD)."""
import io
import json

import fastavro
import pytest

from agentstream.schemas import load_catalog
from agentstream.schemas.catalog import parse
from agentstream.schemas.compatibility import check_backward, example_record

CATALOG = load_catalog()
PAIRS = [
    (name, old, new)
    for name in CATALOG.names()
    for old, new in zip(CATALOG.versions(name), CATALOG.versions(name)[1:])
]


@pytest.mark.parametrize("name", CATALOG.names())
def test_versions_are_numbered_and_ids_unique(name):
    versions = CATALOG.versions(name)
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    ids = [v.id for n in CATALOG.names() for v in CATALOG.versions(n)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name, old, new", PAIRS, ids=[f"{n}:v{o.version}->v{w.version}" for n, o, w in PAIRS])
def test_backward_compatible(name, old, new):
    assert check_backward(json.loads(old.text), json.loads(new.text)) == []
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old.parsed, example_record(json.loads(old.text)))
    buf.seek(0)
    fastavro.schemaless_reader(buf, old.parsed, new.parsed)


def test_checker_catches_breaking_changes():
    old = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
    added_without_default = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "string"}, {"name": "b", "type": "long"}]}
    type_changed = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    assert check_backward(old, added_without_default)
    assert check_backward(old, type_changed)
    fine = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": "string"}, {"name": "b", "type": "long", "default": 0}]}
    assert check_backward(old, fine) == []
    parse(json.dumps(fine))
