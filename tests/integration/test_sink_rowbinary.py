"""The fast path's RowBinary rows against ClickHouse's own reading of the same Avro, on the real
chDB: for random records of every staged writer schema (every union branch, odd strings, integer
limits, nan and infinities), the staging rows are the same whichever way they travel. And the
writer takes RowBinary only where the staging table's columns are the transcoder's.
"""
from __future__ import annotations

import io
import json
import random

import fastavro
import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.avro_binary import encode_long
from agentstream.sink import apply_migrations, rowbinary
from agentstream.sink.containers import STAGED_SCHEMAS, header
from agentstream.sink.ledger import OffsetRange
from agentstream.sink.retention import RetentionBook
from agentstream.sink.tables import TABLE_SPECS
from agentstream.sink.writer import RangeWriter
from tests.avro_datums import datum
from tests.staged_schemas import staged_container_schemas

from test_sink_support import Msg, run_events

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not rowbinary.AVAILABLE, reason="sink/_rowbinary.c is not built")]
LOOSE = {"allow_suspicious_variant_types": 1}


@pytest.fixture(autouse=True)
def _migrated(chdb_client):
    apply_migrations(chdb_client)


def _table_columns(client, table: str) -> list[tuple[str, str]]:
    return [tuple(r) for r in client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "ORDER BY position", parameters={"t": table}).result_rows]


def test_each_staging_table_is_exactly_what_its_transcoder_writes(chdb_client):
    staged = staged_container_schemas()
    assert len(staged) == len(STAGED_SCHEMAS)
    for doc, table in staged:
        tc = rowbinary.transcoder_for(doc)
        assert tc is not None and tc.matches(_table_columns(chdb_client, table)), table


@pytest.mark.parametrize("which", range(len(STAGED_SCHEMAS)))
def test_random_records_land_the_same_as_avro_and_as_rowbinary(chdb_client, unique, which):
    doc, table = staged_container_schemas()[which]
    tc = rowbinary.transcoder_for(doc)
    parsed = fastavro.parse_schema(json.loads(doc))
    rng = random.Random(1000 + which)
    bodies = []
    for _ in range(600):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, datum(json.loads(doc), rng))
        bodies.append(buf.getvalue())
    body = b"".join(bodies)
    sync = bytes(range(16))
    avro = header(doc, sync) + encode_long(len(bodies)) + encode_long(len(body)) + body + sync
    via_avro, via_rb = f"rb_a_{which}_{unique}".replace("-", "_"), f"rb_b_{which}_{unique}".replace("-", "_")
    # scratch tables in the session's database (other tests list its tables): dropped after
    try:
        for t in (via_avro, via_rb):
            chdb_client.command(f"CREATE TABLE {t} AS {table} ENGINE = Memory", settings=LOOSE)
        chdb_client.raw_insert(via_avro, insert_block=avro, fmt="Avro")
        chdb_client.raw_insert(via_rb, insert_block=tc.rows(body, len(bodies)), fmt="RowBinary")
        # every row, as ClickHouse prints it (nan compares unequal to itself; its text does not)
        digest = "SELECT count(), arraySort(groupArray(toString(tuple(*)))) FROM {}"
        a = chdb_client.query(digest.format(via_avro)).result_rows[0]
        b = chdb_client.query(digest.format(via_rb)).result_rows[0]
        kinds = chdb_client.query(f"SELECT uniqExact(variantType(payload)) FROM {via_rb}").result_rows[0][0]
    finally:
        for t in (via_avro, via_rb):
            chdb_client.command(f"DROP TABLE IF EXISTS {t}")
    assert a[0] == len(bodies) and a == b
    assert kinds == 8  # the generator reached every branch of the payload union


class _Recording:
    """The chDB client, with each raw insert's format written down."""

    def __init__(self, client) -> None:
        self._c, self.formats = client, []

    def raw_insert(self, table, **kw):
        self.formats.append((table, kw.get("fmt")))
        return self._c.raw_insert(table, **kw)

    def __getattr__(self, name):
        return getattr(self._c, name)


def _store(client, unique: str, tag: str, **kw) -> tuple[dict, list]:
    codec = Codec()
    tenant = f"rbw-{tag}-{unique}"
    events = [e for i in range(40) for e in run_events(tenant, f"run-{unique}-{tag}-{i}", n_steps=3)]
    msgs = [Msg(codec.encode(EVENT, e), i) for i, e in enumerate(events)]
    writer = RangeWriter(lambda: client, codec, RetentionBook(30, 90), f"g-{unique}-{tag}", **kw)
    rng = OffsetRange(f"rbw-{unique}-{tag}", 0, 0, len(msgs) - 1, 0, avro=True)
    out = writer.store(TABLE_SPECS["events"], {"range": rng}, msgs)
    n = client.query("SELECT count() FROM events WHERE tenant_id = {t:String}", parameters={"t": tenant}).result_rows[0][0]
    assert n == len(events)
    return out


def test_the_writer_sends_rowbinary_and_avro_when_told_or_when_the_table_differs(chdb_client, unique):
    rec = _Recording(chdb_client)
    assert _store(rec, unique, "on")[0]["avro"] > 0
    assert {f for t, f in rec.formats if t.startswith("events_avro_staging")} == {"RowBinary"}
    rec.formats.clear()
    assert _store(rec, unique, "off", rowbinary=False)[0]["avro"] > 0
    assert {f for t, f in rec.formats if t.startswith("events_avro_staging")} == {"Avro"}
    # a staging table whose columns are not the transcoder's keeps the Avro container
    rec.formats.clear()
    codec = Codec()
    writer = RangeWriter(lambda: rec, codec, RetentionBook(30, 90), f"g-{unique}-odd")
    writer._table_takes = {t: False for t in set(STAGED_SCHEMAS.values())}
    tenant = f"rbw-odd-{unique}"
    msgs = [Msg(codec.encode(EVENT, e), i) for i, e in
            enumerate(e for i in range(40) for e in run_events(tenant, f"run-{unique}-odd-{i}", n_steps=3))]
    stored, rejected = writer.store(TABLE_SPECS["events"], {"range": OffsetRange(f"rbw-{unique}-odd", 0, 0, len(msgs) - 1, 0, avro=True)}, msgs)
    assert stored["avro"] == len(msgs) and rejected == []
    assert {f for t, f in rec.formats if t.startswith("events_avro_staging")} == {"Avro"}
