"""A flush's ranges in one insert, and a replay that stores only what the table lacks (real chDB).

The attacks first: a kill inside ClickHouse's commit of a part can leave its dedup token
recorded and its rows gone, so a replay under the same token stores nothing (shown below by
removing the rows behind a recorded token); and a flush's insert spans several partitions, which
a replay on one partition alone cannot re-form. ``RangeWriter.replay`` re-forms the insert
when it can, then looks the replayed records up by key and stores the missing ones.
"""
from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from agentstream.schemas import EVENT, Codec
from agentstream.sink import apply_migrations
from agentstream.sink.ledger import SPLIT, OffsetRange, group_token
from agentstream.sink.retention import RetentionBook
from agentstream.sink.tables import TABLE_SPECS
from agentstream.sink.writer import RangeWriter

from test_sink_support import Msg, run_events

pytestmark = pytest.mark.integration
NOW = int(time.time()) * 1000
SPEC = TABLE_SPECS["events"]


@pytest.fixture(autouse=True)
def _migrated(chdb_client):
    apply_migrations(chdb_client)


def _partitions(codec: Codec, tenant: str, topic: str, runs: int, parts: int = 3):
    """``parts`` partitions' worth of records, each a whole number of runs."""
    out = []
    for p in range(parts):
        events = [e for i in range(runs) for e in run_events(tenant, f"run-{tenant}-{p}-{i}", n_steps=3)]
        msgs = [Msg(codec.encode(EVENT, e), o, topic, p) for o, e in enumerate(events)]
        out.append(({"range": OffsetRange(topic, p, 0, len(msgs) - 1, NOW, avro=True)}, msgs))
    return out


def _totals(client, tenant: str) -> tuple[int, int, int, int]:
    q = lambda sql: int(client.query(sql, parameters={"t": tenant}).result_rows[0][0])  # noqa: E731
    return (q("SELECT count() FROM events WHERE tenant_id = {t:String}"),
            q("SELECT uniqExact(event_id) FROM events WHERE tenant_id = {t:String}"),
            q("SELECT sum(event_count) FROM runs WHERE tenant_id = {t:String}"),
            q("SELECT sum(events) FROM step_rollup_hourly WHERE tenant_id = {t:String}"))


def _derived(client, tenant: str) -> dict[str, object]:
    """Every table events' views keep, as a reader of it would total it."""
    q = lambda sql: client.query(sql, parameters={"t": tenant}).result_rows[0]  # noqa: E731
    return {
        "runs": q("SELECT count(), sum(event_count), sum(step_count), sum(llm_calls), round(sum(cost_usd), 6), "
                  "min(started_ts), max(status) FROM runs FINAL WHERE tenant_id = {t:String}"),
        "run_events": q("SELECT count(), uniqExact(event_id) FROM run_events FINAL WHERE tenant_id = {t:String}"),
        "rollup": q("SELECT sum(events), sum(failures), sum(runs_ended), round(sum(latency_sum_ms), 3), "
                    "round(quantilesTDigestMerge(0.5)(latency_state)[1], 3) FROM step_rollup_hourly "
                    "WHERE tenant_id = {t:String}"),
        "costs": q("SELECT sum(calls), sum(input_tokens), round(sum(cost_usd), 6) FROM cost_rollup_daily "
                   "WHERE tenant_id = {t:String}"),
        "user_costs": q("SELECT sum(calls), sum(output_tokens) FROM cost_rollup_daily_user WHERE tenant_id = {t:String}"),
    }


def test_a_flush_of_three_partitions_is_one_insert_and_no_replay_stores_it_twice(chdb_client, unique):
    codec = Codec()
    tenant, topic = f"grp-{unique}", f"grp-{unique}.events"
    parts = _partitions(codec, tenant, topic, runs=5)
    n = sum(len(msgs) for _, msgs in parts)
    tokens: list[str] = []

    class Counting:
        def raw_insert(self, *a, **kw):
            tokens.append(kw["settings"]["insert_deduplication_token"])
            return chdb_client.raw_insert(*a, **kw)

        def __getattr__(self, name):
            return getattr(chdb_client, name)

    token = group_token([cell["range"] for cell, _ in parts])
    for cell, _ in parts:  # as the batcher plans them
        cell["range"] = dataclasses.replace(cell["range"], flush=token)
    writer = RangeWriter(lambda: Counting(), codec, RetentionBook(30, 90), f"g-{unique}")
    assert writer.store_group(SPEC, parts) == ({"avro": n, "python": 0}, [])
    assert tokens == [f"{token}/avro:{codec.resolver.writer_id(EVENT)}"]
    # a retry of the same flush (an outage after ClickHouse stored it) is dropped as a repeat
    writer.store_group(SPEC, parts)
    assert _totals(chdb_client, tenant) == (n, n, n, n)
    # The crash came before the commit. Restarted with all three partitions, the sink re-forms
    # the insert (the same token: every table drops it) and finds nothing missing.
    writer.replay(SPEC, parts)
    assert _totals(chdb_client, tenant) == (n, n, n, n) and len(tokens) == 3
    # Restarted with the partitions on different consumers, each replays its range alone, which
    # no token of the flush's insert covers: it stores only what events lacks, here nothing.
    for cell, msgs in parts:
        split = {"range": dataclasses.replace(cell["range"], flush=SPLIT)}
        assert writer.replay(SPEC, [(split, msgs)]) == ({"avro": 0, "python": 0}, [])
    assert _totals(chdb_client, tenant) == (n, n, n, n) and len(tokens) == 3


def test_a_replay_stores_the_rows_a_recorded_token_lost(chdb_client, unique):
    codec = Codec()
    tenant, topic = f"lost-{unique}", f"lost-{unique}.events"
    (cell, msgs), = _partitions(codec, tenant, topic, runs=4, parts=1)
    n = len(msgs)
    writer = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}")
    writer.store(SPEC, cell, msgs)
    whole = _derived(chdb_client, tenant)
    # The token is recorded, the rows are gone (as after a kill between the dedup log's append
    # and the part's rename): the events rows of half of the runs removed. The view targets
    # kept theirs (each table's part is committed on its own).
    gone = sorted({m for m in (codec.decode_as(EVENT, x.value())["run_id"] for x in msgs)})[:2]
    chdb_client.command("ALTER TABLE events DELETE WHERE tenant_id = {t:String} AND run_id IN {r:Array(String)} "
                        "SETTINGS mutations_sync = 2", parameters={"t": tenant, "r": gone})
    kept = _totals(chdb_client, tenant)[0]
    assert 0 < kept < n
    # the attack: the same token again stores nothing
    writer.store(SPEC, cell, msgs)
    assert _totals(chdb_client, tenant)[0] == kept
    # the replay sends the insert again (dropped), then looks the records up and stores the
    # missing ones, and only those, past the views: runs and the rollups still count each once
    stored, rejected = writer.replay(SPEC, [(cell, msgs)])
    assert stored == {"avro": n, "python": n - kept} and rejected == []
    assert _totals(chdb_client, tenant) == (n, n, n, n)
    assert _derived(chdb_client, tenant) == whole
    # a second replay (killed again before the commit) finds them all
    assert writer.replay(SPEC, [(cell, msgs)])[0]["python"] == 0
    assert _totals(chdb_client, tenant) == (n, n, n, n)
    assert _derived(chdb_client, tenant) == whole


def _stored_flush(client, unique: str, name: str, runs: int, bystander: bool = True):
    """A flush of two partitions stored whole: (codec, tenant, parts, writer, derived totals).

    With a ``bystander``, each partition's range ends with a run of another tenant, so every
    part the insert writes keeps rows when a test deletes the tenant's: a mutation that empties
    a part lets ClickHouse drop the part and, later, its dedup token, and a re-sent insert is
    then stored again (seen once under CI's load), which is not the state a kill leaves."""
    codec = Codec()
    tenant, topic = f"{name}-{unique}", f"{name}-{unique}.events"
    parts = _partitions(codec, tenant, topic, runs=runs, parts=2)
    if bystander:
        for cell, msgs in parts:
            p = cell["range"].partition
            for e in run_events(f"{tenant}-bystander", f"run-{tenant}-by-{p}", n_steps=3):
                msgs.append(Msg(codec.encode(EVENT, e), len(msgs), topic, p))
            cell["range"] = dataclasses.replace(cell["range"], end=len(msgs) - 1)
    writer = RangeWriter(lambda: client, codec, RetentionBook(30, 90), f"g-{unique}")
    writer.store_group(SPEC, parts)
    return codec, tenant, parts, writer, _derived(client, tenant)


ALL_TARGETS = ("runs", "step_rollup_hourly", "cost_rollup_daily", "cost_rollup_daily_user", "run_events")


@pytest.mark.parametrize("lost,chunk", [
    (("runs",), 2000), (("run_events",), 2000), (("step_rollup_hourly",), 2000),
    (("cost_rollup_daily", "cost_rollup_daily_user"), 2000), (ALL_TARGETS, 2000),
    # keys in parameter lists of 5: a rollup key's events and a run's split across lists
    (ALL_TARGETS, 5),
])
def test_a_replay_gives_a_view_target_the_part_a_kill_kept_from_it_alone(chdb_client, unique, lost, chunk):
    """A view target's part lost behind its recorded token, events' kept: the replay's insert is
    dropped everywhere, events holds every record, and only the table-by-table check finds it."""
    _, tenant, parts, writer, whole = _stored_flush(chdb_client, unique, "view", runs=3)
    writer.views.chunk = chunk
    for table in lost:
        chdb_client.command(f"ALTER TABLE {table} DELETE WHERE tenant_id = {{t:String}} SETTINGS mutations_sync = 2",
                            parameters={"t": tenant})
    assert _derived(chdb_client, tenant) != whole
    # the attack: the same insert again stores nothing anywhere
    writer.store_group(SPEC, parts)
    assert _derived(chdb_client, tenant) != whole
    writer.replay(SPEC, parts)
    assert _derived(chdb_client, tenant) == whole
    # nothing twice: a replay of a range every table holds changes nothing, nor does one split
    # across consumers (each partition's range alone)
    writer.replay(SPEC, parts)
    for cell, msgs in parts:
        writer.replay(SPEC, [({"range": dataclasses.replace(cell["range"], flush=SPLIT)}, msgs)])
    assert _derived(chdb_client, tenant) == whole
    per_run = len(run_events("b", "b", n_steps=3))
    n = sum(len(msgs) - per_run for _, msgs in parts)  # less the bystander's run
    assert _totals(chdb_client, tenant) == (n, n, n, n)
    assert _derived(chdb_client, f"{tenant}-bystander")["runs"][:2] == (2, 2 * per_run)


def test_a_refused_record_sends_only_its_own_range_to_python(chdb_client, unique):
    codec = Codec()
    tenant, topic = f"ref-{unique}", f"ref-{unique}.events"
    parts = _partitions(codec, tenant, topic, runs=3)
    cell, msgs = parts[1]
    bad = codec.encode(EVENT, dict(codec.decode_as(EVENT, msgs[0].value()), event_id=str(uuid.uuid4()), seq=2**40))
    msgs.append(Msg(bad, len(msgs), topic, 1))
    cell["range"] = OffsetRange(topic, 1, 0, len(msgs) - 1, NOW, avro=True)
    good = sum(len(m) for _, m in parts) - 1
    writer = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}")
    stored, rejected = writer.store_group(SPEC, parts)
    assert stored == {"avro": len(parts[0][1]) + len(parts[2][1]), "python": len(msgs) - 1}
    assert [r.offset for r in rejected] == [len(msgs) - 1] and "seq" in rejected[0].reason
    assert parts[1][0]["range"].fallback and not parts[0][0]["range"].fallback and not parts[2][0]["range"].fallback
    # retried after an outage: the same paths and tokens, nothing stored twice
    writer.store_group(SPEC, parts)
    assert _totals(chdb_client, tenant) == (good, good, good, good)


def test_a_replayed_flush_finds_each_partitions_lost_rows_though_their_offsets_overlap(chdb_client, unique):
    """Two partitions' ranges share offsets 0..n-1: a lookup of the replayed records by offset
    alone took the other partition's record for each one, so the rows one partition lost (its
    token recorded) were taken as held whenever the other's were."""
    codec, tenant, parts, writer, whole = _stored_flush(chdb_client, unique, "olap", runs=2, bystander=False)
    first = sorted({codec.decode_as(EVENT, x.value())["run_id"] for x in parts[0][1]})
    chdb_client.command("ALTER TABLE events DELETE WHERE tenant_id = {t:String} AND run_id IN {r:Array(String)} "
                        "SETTINGS mutations_sync = 2", parameters={"t": tenant, "r": first})
    n = sum(len(msgs) for _, msgs in parts)
    assert _totals(chdb_client, tenant)[0] == len(parts[1][1])
    stored, rejected = writer.replay(SPEC, parts)
    assert stored["python"] == len(parts[0][1]) and rejected == []
    assert _totals(chdb_client, tenant) == (n, n, n, n)
    assert _derived(chdb_client, tenant) == whole


class _Blink:
    """A client whose first reading of ``runs`` misses a run's events (as while a later insert of
    the same run is between events and runs), then reads true."""

    def __init__(self, client, tenant: str) -> None:
        self._c, self._tenant, self.blinks = client, tenant, 0

    def __getattr__(self, name):
        return getattr(self._c, name)

    def query(self, sql, parameters=None, **kw):
        result = self._c.query(sql, parameters=parameters, **kw)
        if self.blinks == 0 and "_vr_kind" in sql:  # a reading of the view targets
            self.blinks += 1
            rows, first = [], True
            for table, kind, h, v in result.result_rows:
                if first and table == "runs" and kind == 2:
                    v, first = 0, False
                rows.append((table, kind, h, v))
            return type("R", (), {"result_rows": rows})()
        return result


def test_a_view_target_that_reads_short_only_for_an_instant_is_not_filled(chdb_client, unique):
    codec = Codec()
    tenant, topic = f"blink-{unique}", f"blink-{unique}.events"
    (cell, msgs), = _partitions(codec, tenant, topic, runs=2, parts=1)
    writer = RangeWriter(lambda: chdb_client, codec, RetentionBook(30, 90), f"g-{unique}")
    writer.store(SPEC, cell, msgs)
    whole = _derived(chdb_client, tenant)
    blink = _Blink(chdb_client, tenant)
    writer.views.retry_s = 0.01
    outcome = writer.views.settle(blink, sorted({(tenant, r["run_id"], r["event_id"])
                                                 for r in (codec.decode_as(EVENT, m.value()) for m in msgs)}))
    assert blink.blinks == 1 and outcome.filled == {} and outcome.unresolved == {}
    assert _derived(chdb_client, tenant) == whole


def test_a_view_targets_fill_is_announced_to_the_insert_watch_as_an_insert_of_any_run(chdb_client, unique):
    """The embedded API remembers a run's 404 only if no insert began or ended meanwhile
    (api/store/run_misses.py): a fill of run_events behind its back could keep a stale 404."""
    _, tenant, parts, writer, whole = _stored_flush(chdb_client, unique, "watch", runs=2)
    chdb_client.command("ALTER TABLE run_events DELETE WHERE tenant_id = {t:String} SETTINGS mutations_sync = 2",
                        parameters={"t": tenant})
    seen: list[tuple] = []

    class Watch:
        def begin(self, runs):
            seen.append(("begin", (runs, len(seen)), _derived(chdb_client, tenant)["run_events"][0]))
            return len(seen) - 1

        def end(self, token):
            seen.append(("end", token, _derived(chdb_client, tenant)["run_events"][0]))

    writer.watch = Watch()
    writer.replay(SPEC, parts)
    assert _derived(chdb_client, tenant) == whole
    fills = [(b, e) for b, e in zip(seen, seen[1:]) if b[0] == "begin" and e[0] == "end" and b[2] < e[2]]
    assert len(fills) == 1 and fills[0][0][1][0] is None  # an insert of any run
    assert fills[0][1][1] == fills[0][0][1][1] and fills[0][1][2] == whole["run_events"][0]


def test_a_fill_sent_twice_is_stored_once(chdb_client, unique):
    """A driver that re-sends a request whose answer it lost sends the fill twice: the fill's own
    dedup token drops the second."""
    _, tenant, parts, writer, whole = _stored_flush(chdb_client, unique, "twice", runs=2)
    for table in ALL_TARGETS:
        chdb_client.command(f"ALTER TABLE {table} DELETE WHERE tenant_id = {{t:String}} SETTINGS mutations_sync = 2",
                            parameters={"t": tenant})

    class Twice:
        def __init__(self, client) -> None:
            self._c, self.fills = client, 0

        def __getattr__(self, name):
            return getattr(self._c, name)

        def command(self, sql, *args, **kw):
            if sql.startswith("INSERT INTO") and "_vr_" not in sql:
                self.fills += 1
                self._c.command(sql, *args, **kw)
            return self._c.command(sql, *args, **kw)

    twice = Twice(chdb_client)
    writer.views.retry_s = 0.01
    writer.views.settle(twice, sorted({(r["tenant_id"], r["run_id"], r["event_id"])
                                       for r in (Codec().decode_as(EVENT, m.value()) for _, ms in parts for m in ms)}))
    assert twice.fills == len(ALL_TARGETS)
    assert _derived(chdb_client, tenant) == whole
