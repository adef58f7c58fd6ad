"""The Avro fast path against the Python mapper (the reference), on the real chDB.

Contract: for every payload branch, and for records written with Event v1 (old producers, old
data) as well as v2, the rows that land in ``events`` are identical whichever path stored them:
the direct path (rows mapped in C), the staging table + view, or Python. Exactly once: the same
range inserted twice on either fast path leaves ``events``, ``runs`` and the rollup unchanged,
and so does a direct range replayed by a sink that cannot store directly. Bad records: ClickHouse refuses the
container, the range is redone in Python, the bad record is rejected with its reason and the
rest are stored.
"""
from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import time
import uuid

import fastavro
import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.schemas.catalog import load_catalog
from agentstream.schemas.codec import KIND_TO_BRANCH
from agentstream.sink import apply_migrations, event_rows
from agentstream.sink.containers import STAGED_SCHEMAS, ContainerBuilder, canonical_hash
from agentstream.sink.ledger import OffsetRange, pending_plans, record_plans
from agentstream.sink.retention import RetentionBook
from agentstream.sink.rows import EVENT_COLUMNS, event_row
from agentstream.sink.tables import TABLE_SPECS
from agentstream.sink.writer import RangeWriter

from test_sink_support import Msg, run_events

pytestmark = pytest.mark.integration
NOW = int(time.time()) * 1_000_000 + 123_456  # recent: older rows would be past their TTL
SPEC = TABLE_SPECS["events"]


@pytest.fixture(autouse=True)
def _migrated(chdb_client):
    apply_migrations(chdb_client)


def _examples(tenant: str) -> list[dict]:
    """Every payload branch, with optionals both present and absent, awkward strings and floats."""
    base = dict(tenant_id=tenant, agent_id="planner", agent_version="1.0", environment="prod", run_id="run-1",
                sdk_version="0.1", ts_us=NOW, emitted_us=NOW)
    odd = 'a/b \\ "q" é\t\n\x01 ✓ \u2028\u2029 \x7f'
    llm_full = {"provider": "openai", "operation": "chat", "request_model": "gpt-4o", "response_model": "gpt-4o-2024",
                "input_tokens": 7, "output_tokens": 3, "cache_read_tokens": 2, "cache_write_tokens": 1,
                "cost_usd": 0.000123, "finish_reasons": ["stop", "length"], "tool_calls": ["search"],
                "request_digest": "9c" * 32}
    step = {"step_id": "s1", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": NOW - 50,
            "latency_ms": 12.0, "attempt": 1}
    payloads = [
        ("RUN_START", {"entrypoint": "main"}),
        ("RUN_START", {"entrypoint": odd, "role": "critic", "sampled": False}),
        ("RUN_END", {"status": "SUCCESS", "started_us": NOW - 9, "duration_ms": 9.0}),
        ("RUN_END", {"status": "PARTIAL", "outcome": "budget_stopped", "started_us": NOW - 9, "duration_ms": 1234.5678,
                     "step_count": 4, "llm_calls": 2, "input_tokens": 100, "output_tokens": 20, "cost_usd": 2.0}),
        ("RUN_END", {"status": "FAILURE", "outcome": "", "started_us": NOW, "duration_ms": 0.1, "cost_usd": 0.1 + 0.2}),
        ("STEP", dict(step, llm={"provider": "anthropic", "request_model": "claude"})),
        ("STEP", dict(step, latency_ms=0.5, attempt=3, retry_of="s0", llm=llm_full)),
        ("STEP", dict(step, step_kind="TOOL", name="search", status="ERROR",
                      tool={"tool_name": "search", "call_id": "c/1", "args_digest": "abc"})),
        ("STEP", dict(step, step_kind="TOOL", name="calc", status="TIMEOUT", tool={"tool_name": "calc"})),
        ("STEP", dict(step, step_kind="HANDOFF", name="handoff", handoff={"to_agent_id": "b"},
                      approval={"action_digest": "d", "decision": "approved", "approval_latency_ms": 3000.0},
                      fallback={"source": "x", "target": "y", "reason": odd, "preserves_safety_posture": True},
                      content={"preview": "redacted [EMAIL]"})),
        ("STEP", dict(step, step_kind="CUSTOM", name="n", status="CANCELLED", attempt=0,
                      handoff={"to_agent_id": "b", "to_run_id": "r2", "role": "helper"},
                      content={"reference": "vault://x"})),
        ("STEP", dict(step, step_kind="RESPOND", name="respond", content={})),
        ("FAILURE", {"failure_type": "MODEL", "failure_code": "rate_limited"}),
        ("FAILURE", {"failure_type": "TOOL", "failure_code": "timeout", "step_id": "s1", "message": odd,
                     "retryable": True}),
        ("DECISION", {"decision_type": "tool_selection", "selected": "search", "reason_code": "best"}),
        ("DECISION", {"decision_type": "retry", "selected": "x", "candidates": ["x", "y"], "reason_code": "rc",
                      "confidence": 0.75, "step_id": "s2"}),
        ("QUALITY_SIGNAL", {"signal_type": "schema", "signal_code": "valid", "value": True}),
        ("QUALITY_SIGNAL", {"signal_type": "eval", "signal_code": "ok", "value": False, "weight": 2.0,
                            "step_id": "s3"}),
        ("FEEDBACK", {"interaction_id": "i-1", "feedback_type": "user_rating", "value": "negative"}),
        ("COMMAND_ACK", {"command_id": "c1", "command_type": "stop", "status": "applied"}),
        ("COMMAND_ACK", {"command_id": "c2", "command_type": "throttle", "status": "ignored", "detail": odd}),
    ]
    out = []
    for i, (kind, payload) in enumerate(payloads):
        extra = {}
        if i % 3 == 1:
            extra = dict(session_id="sess/1", parent_run_id="run-0", parent_step_id="s9", capture_mode="REDACTED",
                         end_user_id="e7" * 32, policy_version="p7", attributes={"team": "core", "k/ey": odd},
                         redaction={"policy_version": "p7", "rule_counts": {"email": 2, "phone": 0}})
        out.append(dict(base, event_id=f"e{i:02d}-{uuid.uuid4()}", seq=i, ts_us=NOW + i, kind=kind,
                        payload=payload, **extra))
    return out


V1_SCHEMA = load_catalog().by_id(1).parsed


def encode_as(version: str, codec: Codec, ev: dict) -> bytes:
    """``ev`` framed as a writer of that Event version wrote it: v2 is the codec's (the newest),
    v1 is an SDK or gateway from before v2 (its additions dropped, as such a writer had none)."""
    if version == "v2":
        return codec.encode(EVENT, ev)
    ev = {k: v for k, v in ev.items() if k != "end_user_id"}
    payload = ev["payload"]
    if payload.get("llm"):
        payload = dict(payload, llm={k: v for k, v in payload["llm"].items() if k != "request_digest"})
    buf = io.BytesIO()
    buf.write(b"\x00\x00\x00\x00\x01")
    fastavro.schemaless_writer(buf, V1_SCHEMA, dict(ev, payload=(KIND_TO_BRANCH[ev["kind"]], payload)))
    return buf.getvalue()


def _rows(client, tenant: str) -> list[tuple]:
    cols = ", ".join(c for c in EVENT_COLUMNS if c != "tenant_id")
    return client.query(f"SELECT {cols} FROM events WHERE tenant_id = {{t:String}} ORDER BY event_id",
                        parameters={"t": tenant}).result_rows


def _ticks(v):
    return round(v.timestamp() * 1_000_000) if isinstance(v, dt.datetime) else v


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_both_paths_store_identical_rows_for_every_payload_branch(chdb_client, unique, version):
    codec = Codec()
    book = RetentionBook(30, 90)
    unique = f"{unique}-{version}"
    wires = {"py": event_rows.WIRE_PYTHON, "avro": event_rows.WIRE_STAGED}
    if event_rows.AVAILABLE:
        wires["direct"] = event_rows.WIRE_DIRECT
    for path in wires:
        book.set(f"{path}-{unique}", 14)
    writer = RangeWriter(lambda: chdb_client, codec, book, f"g-{unique}")
    stored = {}
    for path, wire in wires.items():
        tenant = f"{path}-{unique}"
        msgs = [Msg(encode_as(version, codec, e), i) for i, e in enumerate(_examples(tenant))]
        assert {int.from_bytes(m.value()[1:5], "big") for m in msgs} == {1 if version == "v1" else 5}
        rng = OffsetRange(f"contract-{unique}-{path}", 0, 0, len(msgs) - 1, NOW, avro=wire)
        by_path, rejected = writer.store(SPEC, {"range": rng}, msgs)
        assert rejected == []
        assert by_path == ({"avro": len(msgs), "python": 0} if wire else {"avro": 0, "python": len(msgs)})
        stored[path] = _rows(chdb_client, tenant)
    assert len(stored["avro"]) == len(_examples("x"))
    for path in wires:
        for a, p in zip(stored[path], stored["py"]):
            assert a[1][:3] == p[1][:3]  # event ids: same example
            for name, va, vp in zip([c for c in EVENT_COLUMNS if c != "tenant_id"], a, p):
                if name == "event_id":
                    continue
                assert va == vp, (path, a[1][:3], name, va, vp)
    # ... and both equal the Python mapper's own tuples (not only what ClickHouse made of them).
    mapped = {e["event_id"][:3]: dict(zip(EVENT_COLUMNS, event_row(codec.decode_as(EVENT, encode_as(version, codec, e)), 14)))
              for e in _examples(f"avro-{unique}")}
    # v2's additions arrive in their columns (and as '' from v1 writers, which had none)
    assert {w["end_user_id"] for w in mapped.values()} == ({"", "e7" * 32} if version == "v2" else {""})
    assert {w["request_digest"] for w in mapped.values()} == ({"", "9c" * 32} if version == "v2" else {""})
    for got in stored["avro"]:
        want = mapped[got[1][:3]]
        for name, v in zip([c for c in EVENT_COLUMNS if c != "tenant_id"], got):
            if name != "event_id":
                assert _ticks(v) == want[name], (got[1][:3], name, v, want[name])


def _totals(client, t):
    q = lambda sql: client.query(sql, parameters={"t": t}).result_rows[0][0]  # noqa: E731
    return (q("SELECT count() FROM events WHERE tenant_id = {t:String}"),
            q("SELECT sum(event_count) FROM runs WHERE tenant_id = {t:String}"),
            q("SELECT sum(events) FROM step_rollup_hourly WHERE tenant_id = {t:String}"))


FAST_WIRES = [event_rows.WIRE_STAGED] + ([event_rows.WIRE_DIRECT] if event_rows.AVAILABLE else [])


@pytest.mark.parametrize("wire", FAST_WIRES)
def test_the_same_range_twice_on_a_fast_path_is_stored_once(chdb_client, unique, wire):
    codec = Codec()
    writer = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}")
    tenant = f"dedup-{unique}"
    events = [e for i in range(3) for e in run_events(tenant, f"run-{unique}-{i}", n_steps=4)]
    msgs = [Msg(codec.encode(EVENT, e), i) for i, e in enumerate(events)]
    rng = OffsetRange(f"dedup-{unique}", 2, 0, len(msgs) - 1, NOW, avro=wire)
    for _ in range(2):
        assert writer.store(SPEC, {"range": rng}, msgs)[0]["avro"] == len(msgs)

    def totals(t):
        return _totals(chdb_client, t)

    assert totals(tenant) == (len(events),) * 3
    # The control: the same records under two different tokens are stored twice, so the
    # assertion above is the token at work (events, runs and the rollup), not an accident.
    ctl = f"ctl-{unique}"
    ctl_msgs = [Msg(codec.encode(EVENT, dict(e, tenant_id=ctl)), i) for i, e in enumerate(events)]
    # a background merge of the ReplacingMergeTree would fold the control's two copies into one
    # (what FINAL reads anyway): hold merges while the raw count is taken
    chdb_client.command("SYSTEM STOP MERGES events")
    try:
        for n in range(2):
            writer.store(SPEC, {"range": OffsetRange(f"ctl-{unique}", n, 0, len(msgs) - 1, NOW, avro=wire)}, ctl_msgs)
        assert totals(ctl) == (2 * len(events),) * 3
    finally:
        chdb_client.command("SYSTEM START MERGES events")


@pytest.mark.skipif(not event_rows.AVAILABLE, reason="sink/_eventrows.c is not built")
def test_a_direct_range_replayed_by_a_sink_that_cannot_store_directly_is_stored_once(chdb_client, unique,
                                                                                  monkeypatch):
    """The crash between insert and commit, then a restart on a build without the C module:
    re-forming the insert through the staging view would not deduplicate (another table, other
    tokens), so the replay stores only what events lacks. With the C module but the path turned
    off, the replay still takes the direct path (only new ranges follow the setting)."""
    codec = Codec()
    group = f"g-{unique}"
    tenant = f"lost-{unique}"
    events = [e for i in range(2) for e in run_events(tenant, f"run-{unique}-{i}", n_steps=3)]
    msgs = [Msg(codec.encode(EVENT, e), i) for i, e in enumerate(events)]
    rng = OffsetRange(f"lost-{unique}", 0, 0, len(msgs) - 1, NOW, avro=event_rows.WIRE_DIRECT)
    record_plans(chdb_client, group, [(rng, len(msgs))])
    direct = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), group)
    assert direct.store(SPEC, {"range": rng}, msgs)[0] == {"avro": len(msgs), "python": 0}
    # the ledger keeps the path, so the restarted sink knows how the range went in
    [plan] = pending_plans(chdb_client, group, {(rng.topic, 0): 0})[(rng.topic, 0)]
    assert plan.avro == event_rows.WIRE_DIRECT
    turned_off = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), group, direct=False)
    assert turned_off.replay(SPEC, [({"range": plan}, msgs)]) == ({"avro": len(msgs), "python": 0}, [])
    assert _totals(chdb_client, tenant) == (len(events),) * 3  # re-formed directly: deduplicated
    monkeypatch.setattr(event_rows, "AVAILABLE", False)  # a build without the C module
    staged_only = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), group)
    stored, rejected = staged_only.replay(SPEC, [({"range": plan}, msgs)])
    assert stored == {"avro": 0, "python": 0} and rejected == []
    assert _totals(chdb_client, tenant) == (len(events),) * 3
    monkeypatch.undo()
    # and the same replay on a sink that can: the re-formed insert deduplicates
    assert direct.replay(SPEC, [({"range": plan}, msgs)])[1] == []
    assert _totals(chdb_client, tenant) == (len(events),) * 3


@pytest.mark.parametrize("wire", FAST_WIRES)
def test_a_refused_container_is_redone_in_python_and_only_the_bad_record_is_rejected(chdb_client, unique, wire):
    codec = Codec()
    group = f"g-{unique}"
    writer = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), group)
    tenant = f"bad-{unique}"
    good = [e for i in range(100) for e in run_events(tenant, f"run-{unique}-{i}", n_steps=2)]
    values = [codec.encode(EVENT, e) for e in good]
    bad_seq = codec.encode(EVENT, dict(good[3], event_id=str(uuid.uuid4()), seq=2**40))
    trailing = codec.encode(EVENT, dict(good[4], event_id=str(uuid.uuid4()))) + b"\x02junk"
    # bad records last: a refused container must not have stored the good rows before them
    not_utf8 = codec.encode(EVENT, dict(good[1], event_id=str(uuid.uuid4()), payload=dict(good[1]["payload"],
                                                                                          name="caf\u00e9")))
    not_utf8 = not_utf8.replace("é".encode(), b"\xc3\x28")  # fastavro refuses it; ClickHouse would store it
    values += [bad_seq, not_utf8, b"\x00\x00\x00\x00\x01\x02", b"not avro"]
    msgs = [Msg(v, i) for i, v in enumerate(values)]
    rng = OffsetRange(f"bad-{unique}", 0, 0, len(msgs) - 1, NOW, avro=wire)
    record_plans(chdb_client, group, [(rng, len(msgs))])
    cell = {"range": rng}
    by_path, rejected = writer.store(SPEC, cell, msgs)
    assert by_path == {"avro": 0, "python": len(good)}
    reasons = {r.offset: r.reason for r in rejected}
    assert set(reasons) == {len(good) + i for i in range(4)}
    assert "seq" in reasons[len(good)] and "magic byte" in reasons[len(good) + 3]
    assert "avro body" in reasons[len(good) + 1]
    assert cell["range"].fallback == (codec.resolver.writer_id(EVENT),)
    # The ledger knows, so a replay after a crash redoes it in Python under the same token.
    plans = pending_plans(chdb_client, group, {(rng.topic, 0): 0})[(rng.topic, 0)]
    assert plans == [cell["range"]]
    assert writer.store(SPEC, {"range": plans[0]}, msgs)[0] == {"avro": 0, "python": len(good)}
    count = chdb_client.query("SELECT count(), uniqExact(event_id) FROM events WHERE tenant_id = {t:String}",
                              parameters={"t": tenant}).result_rows[0]
    assert count == (len(good), len(good))
    # A body with trailing bytes is refused by the mark check, and by Python too (schemas/codec.py).
    r2 = OffsetRange(f"trail-{unique}", 0, 0, 0, NOW, avro=wire)
    by_path, rejected = writer.store(SPEC, {"range": r2}, [Msg(trailing, 0)])
    assert by_path == {"avro": 0, "python": 0} and [r.offset for r in rejected] == [0]
    assert "after the record" in rejected[0].reason


@pytest.mark.parametrize("wire", FAST_WIRES)
def test_invalid_utf8_split_across_list_items_is_refused_like_python_does(chdb_client, unique, wire):
    """Each of two attribute keys, values or decision candidates is invalid UTF-8 while the two
    joined are valid ("Q\\xc3" + "\\xa9R" = "Qé" + "R"). fastavro refuses such a record, so the
    view must too: its per-list checks join items with a separator (0005_avro_ingest.sql)."""
    codec = Codec()
    writer = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}")
    tenant = f"utf-{unique}"
    base = run_events(tenant, f"run-{unique}", n_steps=1)[1]
    cases = {
        "attribute values": dict(base, attributes={"k1": "QQ", "k2": "RR"}),
        "attribute keys": dict(base, attributes={"QQ": "v", "RR": "v"}),
        "candidates": dict(base, kind="DECISION", payload={
            "decision_type": "route", "selected": "a", "candidates": ["QQ", "RR"],
            "reason_code": "r", "confidence": None, "step_id": None}),
    }
    for i, (what, ev) in enumerate(cases.items()):
        raw = codec.encode(EVENT, dict(ev, event_id=str(uuid.uuid4())))
        assert raw.count(b"QQ") == 1 and raw.count(b"RR") == 1
        bad = raw.replace(b"QQ", b"Q\xc3").replace(b"RR", b"\xa9R")
        rng = OffsetRange(f"utf-{unique}-{i}", 0, 0, 0, NOW, avro=wire)
        by_path, rejected = writer.store(SPEC, {"range": rng}, [Msg(bad, 0)])
        assert by_path == {"avro": 0, "python": 0}, what
        assert len(rejected) == 1 and "avro body" in rejected[0].reason, what
    count = chdb_client.query("SELECT count() FROM events WHERE tenant_id = {t:String}",
                              parameters={"t": tenant}).result_rows[0][0]
    assert count == 0


def test_staging_tables_mirror_what_clickhouse_infers_from_the_staged_schemas(chdb_client, tmp_path):
    """If Event gains a version, this keeps the staged set honest: only schemas whose inferred
    columns equal their staging table's may take the fast path (v1 and v2 each checked)."""
    codec = Codec()
    catalog = load_catalog()
    assert sorted(STAGED_SCHEMAS.values()) == ["events_avro_staging", "events_avro_staging_v2"]
    builder = ContainerBuilder(codec.resolver.schema_for_id)
    ev = run_events("t", "r", 1)[0]
    files = {}
    for version, sid in (("v1", 1), ("v2", 5)):
        assert canonical_hash(catalog.by_id(sid).parsed) in STAGED_SCHEMAS
        conts, rest = builder.split([Msg(encode_as(version, codec, ev), 0)], lambda t: 30)
        assert rest == [] and conts[0].schema_id == sid
        files[conts[0].table] = tmp_path / f"{version}.avro"
        files[conts[0].table].write_bytes(conts[0].data())
    # file() reads relative to chDB's user_files; a subprocess chDB owns its own directory.
    out = subprocess.run([sys.executable, "-c", (
        "import sys, json; from agentstream.sink import make_client\n"
        "c = make_client('chdb://' + sys.argv[1])\n"
        "print(json.dumps([c.query(f\"DESCRIBE file('{f}', Avro) SETTINGS print_pretty_type_names=0\").result_rows"
        " for f in sys.argv[2:]]))"),
        str(tmp_path / "db"), *map(str, files.values())], capture_output=True, text=True, check=True,
        env=dict(os.environ))
    import json
    described = json.loads(out.stdout.strip().splitlines()[-1])
    for table, rows in zip(files, described):
        inferred = [(r[0], r[1]) for r in rows]
        staged = [(r[0], r[1]) for r in chdb_client.query(
            f"DESCRIBE TABLE {table} SETTINGS print_pretty_type_names=0").result_rows]
        assert inferred == staged, table


@pytest.mark.skipif(not event_rows.AVAILABLE, reason="sink/_eventrows.c is not built")
def test_a_range_is_planned_direct_only_once_the_landing_table_is_known_to_take_it(chdb_client, unique):
    """The sink asks at start; until then (or with a landing table that differs or is missing)
    nothing is planned on the direct path, so a range's recorded path is the one it takes."""

    class NoLanding:
        """chDB, except that the landing table is not there (a schema migrated before 0013)."""

        def query(self, sql, parameters=None, **kw):
            if "system.columns" in sql and (parameters or {}).get("t") == event_rows.TABLE:
                return chdb_client.query("SELECT 1 WHERE 0")
            return chdb_client.query(sql, parameters=parameters, **kw)

        def __getattr__(self, name):
            return getattr(chdb_client, name)

    codec = Codec()
    asked = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}")
    assert not asked.direct_ready
    assert asked.direct_takes(chdb_client) and asked.direct_ready
    missing = RangeWriter(lambda: NoLanding(), codec, RetentionBook(30, 90), f"g-{unique}")
    assert not missing.direct_takes() and not missing.direct_ready
    off = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}", direct=False)
    assert off.direct_takes() and not off.direct_ready  # replays direct ranges, plans none


class RecordingWatch:
    """An InsertWatch that checks, at each begin, that none of the announced runs' rows of this
    insert is visible yet, and records what each insert announced."""

    def __init__(self, client, tenant: str) -> None:
        self.client, self.tenant = client, tenant
        self.announced: list = []
        self.open: set[int] = set()

    def visible(self) -> int:
        return self.client.query("SELECT count() FROM run_events WHERE tenant_id = {t:String}",
                                 parameters={"t": self.tenant}).result_rows[0][0]

    def begin(self, runs):
        self.announced.append((None if runs is None else set(runs), self.visible()))
        token = len(self.announced)
        self.open.add(token)
        return token

    def end(self, token):
        self.open.remove(token)


@pytest.mark.parametrize("wire", [event_rows.WIRE_PYTHON] + FAST_WIRES)
def test_every_insert_into_events_announces_its_runs_before_it_is_sent(chdb_client, unique, wire):
    """What the embedded API's cache of missing runs relies on (api/store/run_misses.py): every
    insert into events is announced with every run it carries (or as 'any run', None), before
    any of its rows is visible in run_events, and ended; a container refused and redone in Python
    is announced again; an alerts insert is not an insert into events. (Run ids with non-ASCII
    text: the keys are UTF-8, as the API spells them.)"""
    from agentstream.schemas import ALERT
    from agentstream.schemas.run_keys import run_key

    codec = Codec()
    tenant = f"watch-{unique}"
    watch = RecordingWatch(chdb_client, tenant)
    writer = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}", watch=watch)
    events = [e for i in range(4) for e in run_events(tenant, f"run-{unique}-{i}é", n_steps=2)]
    msgs = [Msg(codec.encode(EVENT, e), i) for i, e in enumerate(events)]
    writer.store(SPEC, {"range": OffsetRange(f"watch-{unique}", 0, 0, len(msgs) - 1, NOW, avro=wire)}, msgs)
    runs = {run_key(tenant, e["run_id"]) for e in events}
    assert watch.open == set() and [v for _, v in watch.announced] == [0]
    [(announced, _)] = watch.announced
    if wire == event_rows.WIRE_STAGED:
        assert announced is None  # the staging view's rows are not read here: any run
    else:
        assert announced == runs
    assert watch.visible() == len(events)
    # refused on a fast path, redone in Python: two inserts, each announced
    bad = codec.encode(EVENT, dict(events[0], event_id=str(uuid.uuid4()), run_id="late", seq=2**40))
    more = [Msg(codec.encode(EVENT, dict(e, run_id="late", event_id=str(uuid.uuid4()))), i)
            for i, e in enumerate(events[:3])] + [Msg(bad, 3)]
    watch.announced.clear()
    _, rejected = writer.store(SPEC, {"range": OffsetRange(f"watch2-{unique}", 0, 0, 3, NOW, avro=wire)}, more)
    assert len(rejected) == 1 and watch.open == set()
    assert [a for a, _ in watch.announced][-1] == {run_key(tenant, "late")}
    # the staging view's refusal is ClickHouse's, during an insert; the C refuses before sending one
    assert len(watch.announced) == (2 if wire == event_rows.WIRE_STAGED else 1)
    alert = {"alert_id": f"a-{unique}", "alert_type": "loop", "severity": "WARNING", "tenant_id": tenant,
             "agent_id": "planner", "run_id": "late", "title": "t", "evidence": {}, "detected_us": NOW,
             "source_offsets": []}
    watch.announced.clear()
    writer.store(TABLE_SPECS["alerts"], {"range": OffsetRange(f"watch3-{unique}", 0, 0, 0, NOW)},
                 [Msg(codec.encode(ALERT, alert), 0)])
    assert watch.announced == []
