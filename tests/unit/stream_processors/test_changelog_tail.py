"""apply_tail through a real faust table and its recovery bookkeeping (no broker): records past
faust's offset are applied in order through faust's own changelog path, tombstones delete, and
faust's offsets move past them so a record its recovery still holds is not applied again."""
from __future__ import annotations

import faust
from faust.types import TP

from agentstream.stream_processors.changelog_tail import apply_tail


def _table():
    app = faust.App("tail-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("fleet-state", key_type=bytes, value_type=bytes, partitions=2)
    recovery = app.tables.recovery
    topic = table.changelog_topic.get_topic_name()
    for p in (0, 1):
        recovery.actives_for_table[table].add(TP(topic, p))
    return table, recovery, topic


def test_records_past_faust_offsets_are_applied_in_order_and_offsets_move():
    table, recovery, topic = _table()
    recovery.active_offsets[TP(topic, 0)] = 4  # faust applied up to offset 4
    table.data[b"a"] = b"old-a"
    records = [(topic, 0, 3, b"a", b"stale"), (topic, 0, 4, b"a", b"applied-by-faust"),
               (topic, 0, 5, b"a", b"a5"), (topic, 0, 6, b"b", b"b6"), (topic, 0, 7, b"a", b"a7"),
               (topic, 1, 0, b"c", b"c0"), (topic, 1, 1, b"c", None),
               ("someone-elses-changelog", 0, 9, b"z", b"z")]
    assert apply_tail(table, recovery, records) == 5
    assert table.data[b"a"] == b"a7" and table.data[b"b"] == b"b6"
    assert b"c" not in table.data, "a tombstone deletes"
    assert b"z" not in table.data, "a partition this table does not own is not applied"
    assert recovery.active_offsets[TP(topic, 0)] == 7 and recovery.active_offsets[TP(topic, 1)] == 1
    # faust's recovery loop applies only offsets above these, so a held copy is dropped
    assert apply_tail(table, recovery, [(topic, 0, 6, b"a", b"again")]) == 0
    assert table.data[b"a"] == b"a7"


def test_a_partition_faust_never_read_starts_from_its_first_record():
    table, recovery, topic = _table()
    recovery.active_offsets[TP(topic, 0)] = None  # what faust sets for a memory store
    assert apply_tail(table, recovery, [(topic, 0, 0, b"k", b"v0"), (topic, 0, 1, b"k", b"v1")]) == 2
    assert table.data[b"k"] == b"v1"


def test_the_app_does_not_check_an_in_memory_store_against_the_short_watermark(tmp_path):
    """A worker that read a partition's changelog tail holds an offset past what the embedded
    broker calls the end; given that partition again by a rebalance, faust's consistency check
    raised ConsistencyError and the worker died (seen in test_many_workers). The check guards a
    RocksDB file that outlived its topic: with the in-memory store it is off."""
    from agentstream.stream_processors.app import create_app
    from agentstream.stream_processors.settings import ProcessorsSettings

    app = create_app(ProcessorsSettings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path / "data"), partitions=4)
    assert str(app.conf.store) == "memory:"
    assert app.conf.recovery_consistency_check is False
