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


def _records(schema, out=None):
    """Every named record of a schema, by name -> its field names in order."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for b in schema:
            _records(b, out)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            out[schema["name"]] = [f["name"] for f in schema["fields"]]
            for f in schema["fields"]:
                _records(f["type"], out)
        for key in ("items", "values"):
            if key in schema:
                _records(schema[key], out)
    return out


@pytest.mark.parametrize("name, old, new", PAIRS, ids=[f"{n}:v{o.version}->v{w.version}" for n, o, w in PAIRS])
def test_a_new_version_only_appends_fields(name, old, new):
    """Nothing of an old version is renamed, reordered or dropped: each record's old fields are a
    prefix of its new fields (byte-level readers, such as the sink's tenant read and the
    processors' field skippers, rely on the old positions)."""
    before, after = _records(json.loads(old.text)), _records(json.loads(new.text))
    for record, fields in before.items():
        assert after[record][:len(fields)] == fields, record


def test_event_v1_data_reads_as_v2_with_the_additions_null():
    v1, v2 = CATALOG.by_id(1), CATALOG.by_id(5)
    assert (v1.name, v1.version, v2.name, v2.version) == (v2.name, 1, "agentstream.v1.Event", 2)
    doc = json.loads(v1.text)
    for branch in (0, 1):  # optionals null, then filled
        rec = example_record(doc, branch=branch)
        step = next(f["type"] for f in doc["fields"] if f["name"] == "payload")[2]
        rec["kind"], rec["payload"] = "STEP", ("agentstream.v1.Step", example_record(step, branch=1))
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, v1.parsed, rec)
        buf.seek(0)
        got = fastavro.schemaless_reader(buf, v1.parsed, v2.parsed)
        assert got["end_user_id"] is None and got["payload"]["llm"]["request_digest"] is None
        assert {k: v for k, v in got.items() if k not in ("end_user_id", "payload")} == \
            {k: v for k, v in rec.items() if k != "payload"}
