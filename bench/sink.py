"""Kafka -> committed rows/s of the sink, against insert_arrow of the same rows pre-built as columns.

The sink runs on its default Avro fast path (records' own bytes -> staging table -> view), then
(unless --no-python) once more through the Python mapper, the fallback path.

Runs its own EmbeddedBroker and its own chDB directory (this process owns it). Both sides write
into the same ``events`` table, so both pay for the same materialized views.
Usage: python bench/sink.py [--events 400000]
Last line: JSON with sink_rows_s, insert_arrow_rows_s, ratio.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid


def synthetic(n: int, tenant: str) -> list[dict]:
    now = int(time.time() * 1e6)
    out = []
    for i in range(n):
        run = f"run-{i // 20}"
        seq = i % 20
        common = dict(event_id=str(uuid.uuid4()), tenant_id=tenant, agent_id=f"agent-{i % 7}", agent_version="1.2",
                      environment="prod", run_id=run, seq=seq, ts_us=now + i, emitted_us=now + i,
                      sdk_version="0.1", attributes={"team": "core"})
        if seq == 0:
            out.append(dict(common, kind="RUN_START", payload={"entrypoint": "main"}))
        else:
            out.append(dict(common, kind="STEP", payload={
                "step_id": f"s{seq}", "step_kind": "LLM", "name": "chat", "status": "OK", "started_us": now,
                "latency_ms": float(seq), "llm": {"provider": "openai", "request_model": "gpt-4o",
                                                  "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.001}}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=400_000)
    # 4 partitions: 200k buffered rows flush as ~50k-row ranges, one insert each, the same block
    # size as the insert_arrow side below (per-insert overhead dominates smaller ranges).
    ap.add_argument("--batch-rows", type=int, default=200_000)
    ap.add_argument("--no-python", dest="python_too", action="store_false",
                    help="skip the Python-mapper sink run (the fallback path)")
    args = ap.parse_args()

    import pyarrow as pa
    from confluent_kafka import Producer

    from agentstream.cli.embedded_broker import EmbeddedBroker
    from agentstream.schemas import EVENT, Codec, topic_name
    from agentstream.schemas.topics import create_topics
    from agentstream.sink import Sink, SinkSettings, apply_migrations, make_client
    from agentstream.sink.metrics import ROWS
    from agentstream.sink.rows import EVENT_COLUMNS, event_row

    broker = EmbeddedBroker().start()
    try:
        prefix = "bench."
        create_topics(broker.bootstrap_servers, prefix=prefix, partitions=4)
        client = make_client(f"chdb://{tempfile.mkdtemp(prefix='sinkbench-')}")
        apply_migrations(client)
        codec = Codec()
        events = synthetic(args.events, "bench-sink")
        p = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20, "batch.num.messages": 10000})
        topic = topic_name("events", prefix)
        for e in events:
            while True:
                try:
                    p.produce(topic, key=e["run_id"].encode(), value=codec.encode(EVENT, e))
                    break
                except BufferError:
                    p.poll(0.05)
        p.flush(120)
        print(f"produced {len(events)} events")

        def run_sink(group: str, fast: bool) -> tuple[int, float]:
            sink = Sink(SinkSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix, group_id=group,
                                     topics=["events"], batch_max_rows=args.batch_rows, batch_max_seconds=1.0,
                                     session_timeout_ms=6000, read_policies=False, avro_fast_path=fast),
                        client=client).start()
            # The clock starts when the first range is stored: the group join is not throughput.
            while sink.stored_rows == 0:
                time.sleep(0.01)
            t0 = time.perf_counter()
            first = sink.stored_rows
            while sink.stored_rows < len(events) or sink.health()["pending_rows"]:
                time.sleep(0.01)
            while sink.health()["last_commit_at"] is None:
                time.sleep(0.01)
            elapsed = time.perf_counter() - t0
            sink.stop()
            return len(events) - first, elapsed

        before = {k: ROWS.labels("events", k)._value.get() for k in ("avro", "python")}
        sink_rows, sink_s = run_sink("bench-avro", True)
        by_path = {k: int(ROWS.labels("events", k)._value.get() - before[k]) for k in before}
        sink_rows_s = sink_rows / sink_s
        py_rows_s = None
        if args.python_too:
            # The same records again through the Python mapper (another group; the table's
            # ReplacingMergeTree collapses the repeats later): the fallback's throughput.
            py_rows, py_s = run_sink("bench-python", False)
            py_rows_s = py_rows / py_s

        rows = [event_row(dict(e, event_id=str(uuid.uuid4()), tenant_id="bench-arrow"), 30) for e in
                (codec.decode_as(EVENT, codec.encode(EVENT, e)) for e in events)]
        cols = list(zip(*rows))
        schema_types = {r[0]: r[1] for r in client.query("DESCRIBE TABLE events").result_rows}
        arrays = []
        for name, values in zip(EVENT_COLUMNS, cols):
            t = schema_types[name]
            if t.startswith("DateTime64"):
                arrays.append(pa.array(values, pa.timestamp("us", tz="UTC")))
            elif t.startswith("Map"):
                arrays.append(pa.array([list(v.items()) for v in values],
                                       pa.map_(pa.string(), pa.uint64() if "UInt64" in t else pa.string())))
            else:
                arrays.append(pa.array(values))
        table = pa.Table.from_arrays(arrays, names=list(EVENT_COLUMNS))
        t0 = time.perf_counter()
        for off in range(0, table.num_rows, 50_000):
            client.insert_arrow("events", table.slice(off, 50_000))
        arrow_s = time.perf_counter() - t0
        arrow_rows_s = table.num_rows / arrow_s
        stored = client.query("SELECT tenant_id, count() FROM events GROUP BY tenant_id ORDER BY 1").result_rows
        print(f"stored: {stored}")
        print(f"rows stored per sink path (Avro run): {by_path}")
        print(f"sink, Avro fast path  : {sink_rows} rows in {sink_s:.2f}s = {sink_rows_s:,.0f} rows/s")
        if py_rows_s is not None:
            print(f"sink, Python mapper   : {py_rows_s:,.0f} rows/s")
        print(f"insert_arrow          : {table.num_rows} rows in {arrow_s:.2f}s = {arrow_rows_s:,.0f} rows/s")
        out = {"sink_rows_s": round(sink_rows_s), "insert_arrow_rows_s": round(arrow_rows_s),
               "ratio": round(sink_rows_s / arrow_rows_s, 3), "events": len(events), "batch_rows": args.batch_rows,
               "path": "avro" if by_path["python"] == 0 else "mixed"}
        if py_rows_s is not None:
            out["python_sink_rows_s"] = round(py_rows_s)
            out["python_ratio"] = round(py_rows_s / arrow_rows_s, 3)
        print(json.dumps(out))
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
