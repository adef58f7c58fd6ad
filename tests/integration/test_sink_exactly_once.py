"""``kill -9`` the sink at random points 20 times; every event must be stored exactly once.

The sink owns its own chDB directory in a subprocess (chDB allows one data directory per
process); the result is read by another subprocess after the sink has exited.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.topics import create_topics

from test_sink_support import run_events, wait_for

pytestmark = pytest.mark.integration

KILLS = 20
VERIFY = """
import json, sys
from agentstream.sink import make_client
c = make_client("chdb://" + sys.argv[1])
q = lambda s: c.query(s).result_rows[0]
print(json.dumps({
  "rows": q("SELECT count() FROM events")[0],
  "final": q("SELECT count() FROM events FINAL")[0],
  "distinct": q("SELECT uniqExact(event_id) FROM events")[0],
  "runs": q("SELECT count() FROM runs FINAL")[0],
  "run_events": q("SELECT sum(event_count) FROM runs FINAL")[0],
  "run_steps": q("SELECT sum(step_count) FROM runs FINAL")[0],
  "rollup_events": q("SELECT sum(events) FROM step_rollup_hourly")[0],
  "llm_calls": q("SELECT sum(calls) FROM cost_rollup_daily")[0],
  "user_llm_calls": q("SELECT sum(calls) FROM cost_rollup_daily_user")[0],
  "detail_events": q("SELECT count() FROM run_events FINAL")[0],
  "ledger_ranges": q("SELECT count() FROM sink_batches")[0],
  "wires": sorted(q("SELECT groupUniqArray(avro) FROM sink_batches")[0]),
}))
"""


def _sink_env(bootstrap: str, prefix: str, group: str, data: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "AGENTSTREAM_SINK_BOOTSTRAP_SERVERS": bootstrap,
        "AGENTSTREAM_SINK_TOPIC_PREFIX": prefix,
        "AGENTSTREAM_SINK_GROUP_ID": group,
        "AGENTSTREAM_SINK_CLICKHOUSE_DSN": f"chdb://{data}",
        "AGENTSTREAM_SINK_TOPICS": '["events"]',
        "AGENTSTREAM_SINK_BATCH_MAX_ROWS": "300",
        # several ranges per partition per flush, so replays after a kill cover that too
        "AGENTSTREAM_SINK_RANGE_MAX_ROWS": "60",
        # with the direct path off (every other life, below): full ranges (60) on the staging
        # views, the smaller tails of a flush on the Python mapper; on, every range goes direct.
        # So all three paths are killed mid-insert, and a range one life planned is replayed
        # by a life that takes another path for new ranges (the ledger keeps each range's own,
        # and a replay takes it: a life with the setting off still replays direct ranges directly).
        "AGENTSTREAM_SINK_AVRO_MIN_ROWS": "30",
        "AGENTSTREAM_SINK_BATCH_MAX_SECONDS": "0.2",
        "AGENTSTREAM_SINK_METRICS_PORT": "0",
        "AGENTSTREAM_SINK_READ_POLICIES": "false",
        # A killed member would hold its partitions until its session expires; a short session
        # lets most restarted lives get them back and store (and be killed) mid-stream.
        "AGENTSTREAM_SINK_SESSION_TIMEOUT_MS": "3000",
        # Static membership: a restarted life takes over its dead predecessor at once.
        "AGENTSTREAM_SINK_KAFKA_CONFIG": json.dumps({"group.instance.id": f"{group}-0"}),
    })
    return env


def _committed(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)}
    finally:
        c.close()


def test_kill_minus_nine_twenty_times_loses_and_duplicates_nothing(bootstrap, tmp_path):
    from confluent_kafka import Producer

    prefix = f"k{uuid.uuid4().hex[:6]}."
    create_topics(bootstrap, prefix=prefix, partitions=4)
    topic = topic_name("events", prefix)
    group = f"sink-kill-{uuid.uuid4().hex[:6]}"
    data = str(tmp_path / "chdb")
    codec = Codec()
    events = [e for i in range(300) for e in run_events(f"tenant-{i % 3}", f"run-{i}", n_steps=6)]
    last: dict[int, int] = {}

    def delivered(err, msg):
        assert err is None, err
        last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    # Events keep arriving while the sink is being killed, so kills land mid-batch, mid-insert
    # and mid-commit as well as during start-up.
    # The last runs are held back until the kill loop is over, so the final life (direct path
    # on) plans ranges of its own: with life 1 below (direct path off) the ledger then holds
    # both paths whatever the machine's speed (a loaded run once had only one).
    held_back = 150

    def produce(batch, pace_s):
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for i in range(0, len(batch), 150):
            for e in batch[i:i + 150]:
                p.produce(topic, key=e["run_id"].encode(), value=codec.encode(EVENT, e), on_delivery=delivered)
            p.poll(0)
            time.sleep(pace_s)  # spread over the whole kill loop
        assert p.flush(30) == 0

    producer = threading.Thread(target=produce, args=(events[:-held_back], 3.0))
    producer.start()
    env = _sink_env(bootstrap, prefix, group, data)
    cmd = [sys.executable, "-m", "agentstream.sink"]
    rng = random.Random(int(os.environ.get("SINK_KILL_SEED", "0")) or None)
    lives = tmp_path / "lives.log"
    for i in range(KILLS):
        seen = lives.read_text().count(" assigned [") if lives.exists() else 0
        life_env = dict(env, AGENTSTREAM_SINK_DIRECT_EVENT_ROWS="true" if i % 2 == 0 else "false")
        with open(lives, "a") as out:
            proc = subprocess.Popen(cmd, env=life_env, stdout=out, stderr=subprocess.STDOUT)
        if i % 4 == 0:
            time.sleep(rng.uniform(0.2, 3.0))  # during start-up, migrations or the group join
        else:
            # while consuming: after the partitions are assigned, mid-batch/insert/commit
            wait_for(lambda seen=seen: lives.read_text().count(" assigned [") > seen, deadline_s=60,
                     what="the restarted sink to be assigned its partitions")
            if i == 1:
                # The first life with the direct path off stores a flush of its own before its kill
                # timer starts (life 0 is killed in start-up, so nothing is pending for it), so the
                # ledger holds ranges of both paths however slowly later lives replay on this
                # machine: one run on a loaded machine had only direct ranges.
                before = _committed(bootstrap, group, topic, list(range(4)))
                wait_for(lambda before=before: _committed(bootstrap, group, topic, list(range(4))) != before,
                         deadline_s=60,
                         what="the first life with the direct path off to commit a flush")
            time.sleep(rng.uniform(0.0, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    producer.join()
    produce(events[-held_back:], 0.0)

    log = tmp_path / "final.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            parts = sorted(last)
            wait_for(lambda: all(off >= last[p] + 1 for p, off in _committed(bootstrap, group, topic, parts).items()),
                     deadline_s=120, what="every offset committed")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    out = subprocess.run([sys.executable, "-c", VERIFY, data], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    n = len(events)
    assert got["final"] == n and got["distinct"] == n, got
    assert got["runs"] == 300 and got["run_events"] == n and got["run_steps"] == 300 * 6, got
    # Additive view targets count a block stored twice, even after events' merges folded it.
    assert got["rollup_events"] == n, got
    # and every other table events' views keep (a kill can take any one's part alone: view_repair)
    llm = sum(1 for e in events if e["kind"] == "STEP" and e["payload"]["step_kind"] == "LLM")
    assert got["llm_calls"] == got["user_llm_calls"] == llm and got["detail_events"] == n, got
    # Sinks killed before their first insert prove nothing, so the lives must have planned
    # ranges (the ledger row is written before each insert): on average one per two lives at
    # least. How many there are depends on the machine's speed (18 seen once for 20 kills).
    assert got["ledger_ranges"] >= KILLS // 2, got
    assert 2 in got["wires"] and ({0, 1} & set(got["wires"])), got  # the direct path and another
    # The ledger's dedup tokens keep even the raw row count exact, not just FINAL.
    assert got["rows"] == n, got
