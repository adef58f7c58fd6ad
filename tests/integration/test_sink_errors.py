"""The sink's errors by class on the real broker and chDB (the transient class, an outage ridden
out, is test_sink_outage.py): a bug in the insert path stops the sink at once with the range's
coordinates and commits nothing; a stream that is mostly invalid stops it before anything of it
is dead-lettered or committed; a sink whose inserts hang fails /healthz and recovers."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.consumer_errors import ConsumerCrash, DlqRatioExceeded
from agentstream.schemas.topics import create_topics
from agentstream.sink import Sink, SinkSettings, make_client
from agentstream.sink import metrics as m
from agentstream.sink.probes import serve_probes

from test_sink_support import committed, produce, run_events, wait_for

pytestmark = pytest.mark.integration
codec = Codec()


class Wrapped:
    """A real chDB client whose inserts go through ``hook`` first (the injected fault)."""

    def __init__(self, client, hook) -> None:
        self._c, self._hook, self.calls = client, hook, 0

    def __getattr__(self, name):
        return getattr(self._c, name)

    def insert(self, *a, **k):
        self.calls += 1
        self._hook()
        return self._c.insert(*a, **k)

    def raw_insert(self, *a, **k):
        self.calls += 1
        self._hook()
        return self._c.raw_insert(*a, **k)


def setup(bootstrap: str, unique: str, chdb_client, chdb_path, hook, **extra):
    prefix = f"s{unique}."
    create_topics(bootstrap, prefix=prefix, partitions=2)
    clients: list[Wrapped] = []

    def factory():
        clients.append(Wrapped(make_client(f"chdb://{chdb_path}"), hook))
        return clients[-1]

    settings = SinkSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, group_id=f"sink-{unique}",
                            session_timeout_ms=6000, batch_max_seconds=0.2, topics=["events"],
                            read_policies=False, retry_initial_s=0.05, retry_max_s=0.2, **extra)
    return Sink(settings, client=chdb_client, client_factory=factory), prefix, clients


def records_on(bootstrap: str, topic: str, idle_s: float = 2.0) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "peek", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
    try:
        return len([x for x in c.consume(1000, idle_s) if x.error() is None])
    finally:
        c.close()


def events(tenant: str, n_runs: int) -> list[tuple[bytes, bytes]]:
    return [(e["run_id"].encode(), codec.encode(EVENT, e))
            for i in range(n_runs) for e in run_events(tenant, f"run-{i}")]


def test_a_bug_in_the_insert_path_stops_the_sink_with_the_ranges_coordinates(bootstrap, unique, chdb_client, chdb_path):
    def bug():
        raise TypeError("unsupported operand type(s)")  # what a mapper bug looks like

    sink, prefix, clients = setup(bootstrap, unique, chdb_client, chdb_path, bug)
    topic = topic_name("events", prefix)
    produce(bootstrap, topic, events(f"t-{unique}", 5))
    with pytest.raises(ConsumerCrash, match=rf"{topic}\[\d\] offsets \d+-\d+ failed with TypeError") as exc:
        sink.run(threading.Event())
    assert isinstance(exc.value.__cause__, TypeError)
    assert sum(c.calls for c in clients) <= 2  # each range of the one flush tried once, none retried
    assert not sink.health()["alive"] and "TypeError" in sink.health()["failed"]
    assert committed(bootstrap, f"sink-{unique}", topic) == 0


def test_a_mostly_invalid_stream_stops_the_sink_before_dead_lettering_or_committing(bootstrap, unique, chdb_client,
                                                                                    chdb_path):
    sink, prefix, _ = setup(bootstrap, unique, chdb_client, chdb_path, lambda: None,
                            dlq_min_records=50, batch_max_rows=100_000)
    topic = topic_name("events", prefix)
    produce(bootstrap, topic, [(b"k", b"\x00\x00\x00\x00\x07not an event") for _ in range(120)] + events("t", 2))
    with pytest.raises(DlqRatioExceeded, match=rf"of the last \d+ records were dead-lettered .*{topic}\["):
        sink.run(threading.Event())
    assert committed(bootstrap, f"sink-{unique}", topic) == 0
    assert records_on(bootstrap, topic_name("dlq", prefix)) == 0


def test_a_stuck_sink_fails_healthz_and_its_blocked_time_is_measured(bootstrap, unique, chdb_client, chdb_path):
    gate = threading.Event()
    sink, prefix, _ = setup(bootstrap, unique, chdb_client, chdb_path, lambda: gate.wait(60),
                            stuck_after_s=1.0, batch_max_rows=20, range_max_rows=20)
    topic = topic_name("events", prefix)
    server = serve_probes(sink, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"

    def healthz() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    blocked_before = m.BLOCKED_SECONDS._value.get()
    paused_before = m.PAUSED_SECONDS._value.get()
    sink.start()
    try:
        produce(bootstrap, topic, events(f"t-{unique}", 12))  # 96 records: more than a flush holds
        code, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(healthz()), what="/healthz 503")
        assert body["status"] == "unhealthy" and body["stuck_seconds"] >= 1.0 and body["failed"] is None
        assert m.BLOCKED_SECONDS._value.get() > blocked_before  # the read side waited on the inserts
        # refused by the chain for over a second: the partitions are paused (rebalances are
        # still served), and the time paused is counted once they resume
        wait_for(lambda: sink.health()["paused"], what="partitions paused by the chain's backpressure")
        gate.set()
        wait_for(lambda: committed(bootstrap, f"sink-{unique}", topic) == 96, what="everything committed")
        wait_for(lambda: not sink.health()["paused"], what="partitions resumed")
        assert m.PAUSED_SECONDS._value.get() > paused_before
        wait_for(lambda: healthz()[0] == 200, what="/healthz 200 again")
    finally:
        gate.set()
        sink.stop()
        server.shutdown()
