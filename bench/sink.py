"""Kafka -> committed rows/s of the sink, against insert_arrow of the same rows pre-built as columns.

The sink runs on its default Avro fast path (records' own bytes -> staging table -> view), then
(unless --no-python) once through the Python mapper, the fallback path.

The sink inserts up to ``insert_workers`` ranges at once (default 4, each on its own chDB
handle); the target's reference is one insert_arrow stream, and the same rows in two streams at
once are reported too (``ratio_2streams``), so the two cores' share of the gain is visible.

The sink's clock runs from the start of its first range's store to the return of the commit
that covers the last row, and every row counts.

This machine is noisy, and one sink run is only ~8 ranges: so the two sides are measured in
alternating rounds (sink, then insert_arrow, --rounds times), each round with its own topic and
its own fresh rows (a repeat of a range or block would be dropped by ClickHouse's insert
deduplication and look fast), each timed side starting once the previous side's merges are
done, and the headline ratio is the median of the rounds' ratios.

Runs its own EmbeddedBroker and its own chDB directory (this process owns it). Both sides write
into the same ``events`` table, so both pay for the same materialized views. The sink runs as
its entry points run it: with the sink's GC policy (``sink/gc_policy.py``; ``--interpreter-gc``
keeps CPython's defaults), after the bench has dropped its own set-up objects (the source
events and the arrow side's Python rows), which no sink process holds.
Usage: python bench/sink.py [--events 400000] [--rounds 3]
Last line: JSON with sink_rows_s, insert_arrow_rows_s, ratio (medians over the rounds) and rounds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor


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
    # 200k buffered rows flush as ranges of at most 50k rows (range_max_rows), one insert each,
    # the block size of the insert_arrow side below (per-insert overhead dominates smaller ones),
    # enough ranges for the 4 insert workers.
    ap.add_argument("--batch-rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3, help="alternating sink / insert_arrow rounds")
    ap.add_argument("--insert-workers", type=int, default=None, help="the sink's insert_workers (default: its own)")
    ap.add_argument("--interpreter-gc", action="store_true",
                    help="keep CPython's GC thresholds instead of the sink's GC policy")
    ap.add_argument("--no-python", dest="python_too", action="store_false",
                    help="skip the Python-mapper sink run (the fallback path)")
    args = ap.parse_args()

    import pyarrow as pa
    from confluent_kafka import Producer

    from agentstream.cli.embedded_broker import EmbeddedBroker
    from agentstream.schemas import EVENT, Codec, topic_name
    from agentstream.schemas.topics import create_topics
    from agentstream.sink import Sink, SinkSettings, apply_migrations, make_client
    from agentstream.sink.gc_policy import apply_gc_policy
    from agentstream.sink.metrics import ROWS
    from agentstream.sink.rows import EVENT_COLUMNS, event_row

    broker = EmbeddedBroker().start()
    try:
        dsn = f"chdb://{tempfile.mkdtemp(prefix='sinkbench-')}"
        client = make_client(dsn)
        apply_migrations(client)
        codec = Codec()
        events = synthetic(args.events, "bench-sink")
        values = [(e["run_id"].encode(), codec.encode(EVENT, e)) for e in events]
        # One topic per round: the sink's dedup tokens name the topic, partition and offsets, so
        # a second round over the same topic would be dropped as a replay.
        prefixes = [f"bench{r}." for r in range(args.rounds)]
        p = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 20, "batch.num.messages": 10000})
        for prefix in prefixes:
            create_topics(broker.bootstrap_servers, prefix=prefix, partitions=4)
            topic = topic_name("events", prefix)
            for key, value in values:
                while True:
                    try:
                        p.produce(topic, key=key, value=value)
                        break
                    except BufferError:
                        p.poll(0.05)
        p.flush(120)
        n_events = len(events)
        print(f"produced {n_events} events into each of {len(prefixes)} topics")

        def run_sink(prefix: str, group: str, fast: bool) -> tuple[int, float]:
            sink = Sink(SinkSettings(bootstrap_servers=broker.bootstrap_servers, topic_prefix=prefix, group_id=group,
                                     topics=["events"], batch_max_rows=args.batch_rows, batch_max_seconds=1.0,
                                     session_timeout_ms=6000, read_policies=False, avro_fast_path=fast,
                                     **({} if args.insert_workers is None else {"insert_workers": args.insert_workers})),
                        client=client, client_factory=lambda: make_client(dsn))
            # The clock starts when the first range's store begins, and every row counts: the
            # group join and the first batch's reading are not throughput, and with several
            # ranges inserted at once, starting at the first *stored* range would credit the
            # others' work before it to the timed window.
            started: list[float] = []
            # store_group since a flush's ranges go in as one insert (store before)
            hook_store = "store_group" if hasattr(sink.writer, "store_group") else "store"
            store = getattr(sink.writer, hook_store)

            def timed_store(*a, **kw):
                if not started:
                    started.append(time.perf_counter())
                return store(*a, **kw)

            # ... and stops when the commit that covers the last row returns (Kafka to committed)
            finished: list[float] = []
            # (commit_ranges since the sink became a chain of steps; _commit before, so the same
            # bench runs on a checkout from before it for side-by-side figures)
            hook = "commit_ranges" if hasattr(sink, "commit_ranges") else "_commit"
            commit = getattr(sink, hook)

            def timed_commit(*a, **kw):
                commit(*a, **kw)
                if sink.stored_rows >= n_events and not finished:
                    finished.append(time.perf_counter())

            setattr(sink.writer, hook_store, timed_store)
            setattr(sink, hook, timed_commit)
            sink.start()
            while not finished:
                time.sleep(0.005)
            sink.stop()
            return n_events, finished[0] - started[0]

        rows = [event_row(dict(e, tenant_id="bench-arrow"), 30) for e in
                (codec.decode_as(EVENT, v) for _, v in values)]
        cols = list(zip(*rows))
        schema_types = {r[0]: r[1] for r in client.query("DESCRIBE TABLE events").result_rows}
        arrays = []
        for name, col in zip(EVENT_COLUMNS, cols):
            t = schema_types[name]
            if t.startswith("DateTime64"):
                arrays.append(pa.array(col, pa.timestamp("us", tz="UTC")))
            elif t.startswith("Map"):
                arrays.append(pa.array([list(v.items()) for v in col],
                                       pa.map_(pa.string(), pa.uint64() if "UInt64" in t else pa.string())))
            else:
                arrays.append(pa.array(col))
        base_table = pa.Table.from_arrays(arrays, names=list(EVENT_COLUMNS))
        del events, values, rows, cols, arrays
        gc_policy = "interpreter" if args.interpreter_gc else "sink"
        if not args.interpreter_gc:
            apply_gc_policy(SinkSettings().gc_gen0_threshold)
        id_col = EVENT_COLUMNS.index("event_id")

        arrow_clients = [client, make_client(dsn)]

        def run_arrow(streams: int = 1) -> float:
            """insert_arrow of 50k-row blocks; ``streams`` > 1: that many at once, each on its own
            connection, like the sink's insert threads (reported, not the target's reference)."""
            # fresh event ids: an identical block would be dropped by insert deduplication
            table = base_table.set_column(id_col, "event_id", pa.array([str(uuid.uuid4()) for _ in range(n_events)]))
            blocks = [table.slice(off, 50_000) for off in range(0, table.num_rows, 50_000)]
            t0 = time.perf_counter()
            if streams == 1:
                for b in blocks:
                    client.insert_arrow("events", b)
            else:
                with ThreadPoolExecutor(streams) as pool:
                    list(pool.map(lambda i: [arrow_clients[i].insert_arrow("events", b) for b in blocks[i::streams]],
                                  range(streams)))
            return table.num_rows / (time.perf_counter() - t0)

        def quiesce() -> None:
            # Each timed side starts with no merge of the previous side's parts under way: they
            # compete for the same two cores, and would tax whichever side runs next.
            end = time.monotonic() + 120
            while time.monotonic() < end and client.query("SELECT count() FROM system.merges").result_rows[0][0]:
                time.sleep(0.2)

        before = {k: ROWS.labels("events", k)._value.get() for k in ("avro", "python")}
        rounds = []
        for r, prefix in enumerate(prefixes):
            quiesce()
            sink_rows, sink_s = run_sink(prefix, f"bench-avro-{r}", True)
            quiesce()
            arrow_rows_s = run_arrow()
            quiesce()
            arrow2_rows_s = run_arrow(streams=2)
            rounds.append({"sink_rows_s": round(sink_rows / sink_s), "insert_arrow_rows_s": round(arrow_rows_s),
                           "ratio": round(sink_rows / sink_s / arrow_rows_s, 3),
                           "insert_arrow_2streams_rows_s": round(arrow2_rows_s),
                           "ratio_2streams": round(sink_rows / sink_s / arrow2_rows_s, 3)})
            print(f"round {r}: sink, Avro fast path {sink_rows} rows in {sink_s:.2f}s = {sink_rows / sink_s:,.0f} rows/s; "
                  f"insert_arrow {arrow_rows_s:,.0f} rows/s (2 streams: {arrow2_rows_s:,.0f}); "
                  f"ratio {rounds[-1]['ratio']} (against 2 streams: {rounds[-1]['ratio_2streams']})")
        by_path = {k: int(ROWS.labels("events", k)._value.get() - before[k]) for k in before}
        py_rows_s = None
        if args.python_too:
            # The first round's records again through the Python mapper (another group, whose
            # tokens differ from the Avro path's; ReplacingMergeTree collapses the repeats later).
            quiesce()
            py_rows, py_s = run_sink(prefixes[0], "bench-python", False)
            py_rows_s = py_rows / py_s
        stored = client.query("SELECT tenant_id, count() FROM events GROUP BY tenant_id ORDER BY 1").result_rows
        print(f"stored: {stored}")
        print(f"rows stored per sink path (Avro rounds): {by_path}")

        def median(key: str) -> float:
            return statistics.median(x[key] for x in rounds)

        out = {"sink_rows_s": round(median("sink_rows_s")), "insert_arrow_rows_s": round(median("insert_arrow_rows_s")),
               "ratio": round(median("ratio"), 3), "ratio_min": min(x["ratio"] for x in rounds),
               "insert_arrow_2streams_rows_s": round(median("insert_arrow_2streams_rows_s")),
               "ratio_2streams": round(median("ratio_2streams"), 3), "insert_workers": args.insert_workers or SinkSettings().insert_workers,
               "rounds": rounds, "events": n_events, "batch_rows": args.batch_rows, "gc_policy": gc_policy,
               "path": "avro" if by_path["python"] == 0 else "mixed"}
        print(f"sink, Avro fast path  : {out['sink_rows_s']:,} rows/s (median of {len(rounds)} rounds)")
        if py_rows_s is not None:
            print(f"sink, Python mapper   : {py_rows_s:,.0f} rows/s")
            out["python_sink_rows_s"] = round(py_rows_s)
            out["python_ratio"] = round(py_rows_s / out["insert_arrow_rows_s"], 3)
        print(f"insert_arrow          : {out['insert_arrow_rows_s']:,} rows/s (median)")
        print(f"ratio (median of the rounds' side-by-side ratios): {out['ratio']}")
        print(json.dumps(out))
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
