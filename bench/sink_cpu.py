"""The sink's CPU per event, taken apart, and a before/after ratio measured side by side.

    python bench/sink_cpu.py [--events 120000] [--rate 12000] [--rounds 2] [--arms before,after] [--anatomy-reps 0]

What bench/e2e.py reports as one figure (the sink+API process's CPU per event) is taken apart
here: the sink runs as the embedded stack runs it (its own process, its own chDB directory, the
embedded settings, insert threads with their own handles, the sink's GC policy), fed at a paced
rate (``--rate``, events/s, like the processors feed it in the stack) with the real SDK's records
(bench/e2e_sdk.py emits them once into a source topic; the processors pass clean records on as
their original bytes, so these are the bytes the sink reads in the stack).

Per arm and round, from the sink's assignment until every event is stored, then until
ClickHouse's merges of those parts are done:

- CPU of the process (utime+stime from /proc) in µs per event, stored and settled (with merges);
- CPU per thread, grouped by what the thread is: the sink's consume loop, its insert threads
  (Python: building containers, the Python mapper; and ClickHouse: parsing, the views, writing
  the parts, all run on the calling thread by chDB), librdkafka, ClickHouse's merge and
  background pools, and any other;
- the inserts: how many, rows per insert, which path (Avro or Python), and ClickHouse's own
  counters (``system.events``: merged rows, parts written, merge time);
- the outputs: a digest of every table's rows (merged, ``inserted_at`` left out), which must be
  the same in every arm.

Arms (``ARMS``: settings and left-out migrations; alternating, the order swapped each round):
``before`` inserts each partition range on its own (``insert_per_flush=False``), ``after``
the current defaults (a flush's ranges in one insert), ``nogap`` without the cost-aware gap, ``busy3s`` the gap capped at 3 s instead of 2. ``--anatomy-reps N`` also
takes one Avro insert apart: its fixed cost per insert and cost per row, per view and index.
Last line: JSON with each arm's medians, ``ratio`` (after / before CPU µs per event, settled),
the breakdown and whether every table's rows were the same in every arm (``outputs_identical``).

    python bench/sink_cpu.py --events 36000 --rate 3000 --rounds 2
    python bench/sink_cpu.py --events 120000 --rate 12000 --arms before,after,busy3s --anatomy-reps 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")

# What each arm changes: SinkSettings overrides, and migrations it leaves out (recorded as
# applied without running them, so the sink does not apply them either).
ARMS: dict[str, dict] = {
    # one insert per partition range, as before the flush's ranges went in together
    "before": {"settings": {"insert_per_flush": False}, "skip_migrations": []},
    # flushes spaced by the age and idle rules alone, as before the cost-aware gap
    "nogap": {"settings": {"flush_insert_share": 0.0}, "skip_migrations": []},
    "after": {"settings": {}, "skip_migrations": []},
    # the gap's cap raised from the default (2 s): fewer inserts still, more latency under load
    "busy3s": {"settings": {"flush_max_busy_seconds": 3.0}, "skip_migrations": []},
    # ...and lowered: more, smaller inserts, less latency under load
    "busy1s": {"settings": {"flush_max_busy_seconds": 1.0}, "skip_migrations": []},
    # without the run detail's lookup table (run_events, its view and their merges)
    "norunev": {"settings": {}, "skip_migrations": ["0010_run_events.sql"]},
    # Event records through the staging tables' views, as before the direct path (event_rows.py)
    "staged": {"settings": {"direct_event_rows": False}, "skip_migrations": []},
    # the fast path's containers inserted as Avro (ClickHouse parses them) instead of RowBinary
    "avrowire": {"settings": {"avro_as_rowbinary": False}, "skip_migrations": []},
    # run_events kept but its detail not formatted (what formatRowNoNewline costs of it)
    "nodetail": {"settings": {}, "skip_migrations": [], "post_sql": [
        "DROP VIEW run_events_mv",
        "CREATE MATERIALIZED VIEW run_events_mv TO run_events AS SELECT tenant_id, run_id, event_id, ts, "
        "retention_days, inserted_at, '' AS detail FROM events"]},
    # merges that rewrite each row fewer times (ClickHouse's merge_selector_base 5 -> 10)
    "mergebase10": {"settings": {}, "skip_migrations": [], "post_sql": [
        f"ALTER TABLE {t} MODIFY SETTING merge_selector_base = 10" for t in ("events", "run_events", "runs")]},
}

# ClickHouse's own counters (system.events) worth a line in the breakdown
CH_EVENTS = ("InsertedRows", "InsertedBytes", "MergedRows", "MergedUncompressedBytes", "Merge",
             "MergeTotalMilliseconds", "MergeExecuteMilliseconds", "MergesTimeMilliseconds",
             "InsertQuery", "SelectQuery", "Query", "MergeTreeDataWriterRows", "MergeTreeDataWriterBlocks",
             "MergeTreeDataWriterCompressedBytes", "UserTimeMicroseconds", "SystemTimeMicroseconds")


# ---- the child: one sink process ----------------------------------------------------------------

def thread_cpu() -> dict[int, tuple[str, float]]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            raw = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        f = raw.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, (int(f[11]) + int(f[12])) / TICK)
    return out


def process_cpu() -> float:
    f = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def thread_group(name: str, py_names: dict[int, str], tid: int) -> str:
    if tid in py_names:
        py = py_names[tid]
        if py.startswith("agentstream-sink-insert"):
            return "insert threads (Python + ClickHouse insert, views, part writes)"
        if py == "agentstream-sink":
            return "consume loop (Python, Kafka poll, batching)"
        return f"python: {py}"
    if name.startswith("rdk:"):
        return "librdkafka"
    if name.startswith(("MergeMutate", "MergeTreeBG", "BgMBSchPool", "MergeTreeMove")):
        return "ClickHouse merges"
    if name.startswith(("BgSchPool", "BgDistSchPool", "BackgrProcPool", "BgCommonPool")):
        return "ClickHouse background schedule"
    return f"other: {name}"


def ch_events(client) -> dict[str, int]:
    names = ", ".join(f"'{n}'" for n in CH_EVENTS)
    return {r[0]: int(r[1]) for r in client.query(f"SELECT event, value FROM system.events WHERE event IN ({names})").result_rows}


# one row per table, merged; inserted_at (the insert's clock) left out; latency_state is a
# t-digest, whose centroids depend on how rows were grouped into states, so its quantiles are
# compared rounded to 1%
DIGESTS = {
    "events": "SELECT count(), sum(cityHash64(toString(tuple(* EXCEPT inserted_at)))) FROM events FINAL",
    "runs": "SELECT count(), sum(cityHash64(toString(tuple(* REPLACE round(cost_usd, 9) AS cost_usd)))) FROM runs FINAL",
    "step_rollup_hourly": "SELECT count(), sum(cityHash64(toString(tuple(* EXCEPT latency_state REPLACE ("
                          "round(cost_usd, 9) AS cost_usd, round(latency_sum_ms, 6) AS latency_sum_ms))), "
                          "toString(arrayMap(x -> round(x, -1), finalizeAggregation(latency_state))))) "
                          "FROM step_rollup_hourly FINAL",
    "cost_rollup_daily": "SELECT count(), sum(cityHash64(toString(tuple(* REPLACE round(cost_usd, 9) AS cost_usd)))) "
                         "FROM cost_rollup_daily FINAL",
    "cost_rollup_daily_user": "SELECT count(), sum(cityHash64(toString(tuple(* REPLACE round(cost_usd, 9) AS cost_usd)))) "
                              "FROM cost_rollup_daily_user FINAL",
    # detail (migration 0010) holds the insert's clock: compared by length only
    "run_events": "SELECT count(), sum(cityHash64(toString(tuple(* EXCEPT (inserted_at, detail))), length(detail))) "
                  "FROM run_events FINAL",
}


def instrument(sink) -> dict[str, float]:
    """Splits the insert threads' CPU (``time.thread_time``) by what they were doing: building
    containers (Python), the Avro insert (ClickHouse: parse, views, parts), the Python mapper,
    its insert (clickhouse-connect's serialisation + ClickHouse), the ledger."""
    import agentstream.sink.writer as writer_mod

    Client = type(sink.client)  # clickhouse-connect's class for this DSN (chDB's here)

    lock = threading.Lock()
    acc: dict[str, float] = {}

    def timed(what: str, fn):
        def call(*a, **kw):
            t = time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                with lock:
                    acc[what] = acc.get(what, 0.0) + time.thread_time() - t
        return call

    builder = sink.writer.builder
    builder.split = timed("containers (Python)", builder.split)
    writer_mod.convert = timed("Python mapper", writer_mod.convert)
    Client.raw_insert = timed("Avro insert (ClickHouse)", Client.raw_insert)
    Client.insert = timed("row insert (clickhouse-connect + ClickHouse)", Client.insert)
    sink.record_plans = timed("ledger (sink_batches)", sink.record_plans)
    return acc


def child(cfg: dict) -> None:
    import clickhouse_connect  # noqa: F401 - imported before the clock starts

    from agentstream.sink import Sink, SinkSettings, apply_migrations, make_client
    from agentstream.sink.gc_policy import apply_gc_policy
    from agentstream.sink.metrics import BATCHES, ROWS
    from agentstream.sink.storage import MIGRATIONS_DIR, load_migrations

    dsn = f"chdb://{cfg['chdb']}"
    client = make_client(dsn)
    skip = set(cfg["skip_migrations"])
    edits = cfg.get("sql_edits", [])
    if skip or edits:
        mig_dir = Path(tempfile.mkdtemp(prefix="sinkcpu-mig-"))
        for f in MIGRATIONS_DIR.glob("*.sql"):
            if f.name not in skip:
                shutil.copy(f, mig_dir)
        for name, old, new in edits:  # an arm's variant of a migration's DDL
            text = (mig_dir / name).read_text()
            if old not in text:
                raise SystemExit(f"sql edit: {old!r} is not in {name}")
            (mig_dir / name).write_text(text.replace(old, new))
        apply_migrations(client, mig_dir)
        for m in load_migrations(MIGRATIONS_DIR):
            if f"{m.version:04d}_{m.name}.sql" in skip:
                client.insert("schema_migrations", [[m.version, m.name]], column_names=["version", "name"])
    elif cfg.get("post_sql"):
        apply_migrations(client)
    for st in cfg.get("post_sql", []):  # an arm's change after the migrations
        client.command(st)
    settings = SinkSettings(bootstrap_servers=cfg["bootstrap"], topic_prefix=cfg["prefix"], group_id="sinkcpu",
                            topics=["events"], read_policies=False, clickhouse_dsn=dsn,
                            **cfg["settings"]).embedded()
    apply_gc_policy(settings.gc_gen0_threshold)
    sink = Sink(settings, client=client, client_factory=lambda: make_client(dsn))
    calls = instrument(sink)
    sink.start()
    while sink._chain is None:
        time.sleep(0.05)
    c0, t0, e0 = process_cpu(), thread_cpu(), ch_events(client)
    b0 = BATCHES.labels("events")._value.get()
    r0 = {k: ROWS.labels("events", k)._value.get() for k in ("avro", "python")}
    print("READY", flush=True)
    n = cfg["events"]
    while sink.stored_rows < n or sink.committed_ranges == 0:
        time.sleep(0.01)
    w_stored = time.monotonic()
    c1 = process_cpu()
    # settled: the sink idle and ClickHouse's merges of these parts done (none for 2 s)
    quiet_since = None
    end = time.monotonic() + 120
    while time.monotonic() < end:
        busy = int(client.query("SELECT count() FROM system.merges").result_rows[0][0])
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 2.0:
            break
        time.sleep(0.1)
    c2, t2, e2 = process_cpu(), thread_cpu(), ch_events(client)
    py_names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    py_names[threading.main_thread().native_id] = "main (bench)"
    groups: dict[str, float] = {}
    for tid, (name, cpu) in t2.items():
        before = t0.get(tid, (name, 0.0))[1]
        g = thread_group(name, py_names, tid)
        groups[g] = groups.get(g, 0.0) + cpu - before
    gone = (c2 - c0) - sum(groups.values())
    if gone > 0.005:
        groups["threads that ended"] = gone
    stored = sink.stored_rows
    inserts = int(BATCHES.labels("events")._value.get() - b0)
    paths = {k: int(ROWS.labels("events", k)._value.get() - r0[k]) for k in r0}
    parts = {r[0]: int(r[1]) for r in client.query(
        "SELECT table, count() FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table").result_rows}
    sink.stop()
    digests = {}
    for table, sql in DIGESTS.items():
        if table in parts or client.command(f"EXISTS TABLE {table}"):  # an arm may leave a table out
            digests[table] = [str(x) for x in client.query(sql).result_rows[0]]
    out = {
        "stored": stored, "cpu_us_per_event_stored": round((c1 - c0) / stored * 1e6, 2),
        "cpu_us_per_event": round((c2 - c0) / stored * 1e6, 2),
        "threads_us_per_event": {g: round(v / stored * 1e6, 2) for g, v in sorted(groups.items(), key=lambda x: -x[1])},
        "insert_thread_us_per_event": {k: round(v / stored * 1e6, 2) for k, v in calls.items()},
        "inserts": inserts, "rows_per_insert": round(stored / max(1, inserts)), "rows_by_path": paths,
        "clickhouse": {k: e2.get(k, 0) - e0.get(k, 0) for k in CH_EVENTS},
        "active_parts": parts, "settle_s": round(time.monotonic() - w_stored, 1), "digests": digests,
    }
    print("RESULT " + json.dumps(out), flush=True)


# ---- the parent: corpus, arms, rounds ----------------------------------------------------------

def make_corpus(bootstrap: str, n: int, steps: int) -> list[tuple[bytes, bytes]]:
    """``n`` events from the real SDK (bench/e2e_sdk.py), read back from its raw topic."""
    from confluent_kafka import Consumer

    from agentstream.schemas import topic_name
    from agentstream.schemas.topics import create_topics

    create_topics(bootstrap, prefix="src.", partitions=4)
    spool = tempfile.mkdtemp(prefix="sinkcpu-spool-")
    cfg = {"bootstrap": bootstrap, "prefix": "src.", "spool": spool, "tenants": ["t-a", "t-b", "t-c"],
           "agents": 4, "steps": steps, "events": n}
    res = subprocess.run([sys.executable, str(HERE / "e2e_sdk.py"), json.dumps(cfg)], capture_output=True,
                         text=True, check=True)
    total = json.loads(res.stdout.strip().splitlines()[-1])["total"]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sinkcpu-corpus", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic_name("raw", "src.")])
    out: list[tuple[bytes, bytes]] = []
    end = time.monotonic() + 120
    # Tansu's end offsets run short: read until the count the SDK reported, not the watermark
    while len(out) < total and time.monotonic() < end:
        for m in c.consume(10_000, 0.5):
            if m.error() is None:
                out.append((m.key(), m.value()))
    c.close()
    shutil.rmtree(spool, ignore_errors=True)
    if len(out) < total:
        raise SystemExit(f"read {len(out)} of the SDK's {total} events back")
    return out


def run_arm(bootstrap: str, corpus: list[tuple[bytes, bytes]], arm: str, tag: str, rate: float) -> dict:
    from confluent_kafka import Producer

    from agentstream.schemas import topic_name
    from agentstream.schemas.topics import create_topics

    prefix = f"sc{tag}."
    create_topics(bootstrap, prefix=prefix, partitions=4)
    chdb_dir = tempfile.mkdtemp(prefix="sinkcpu-chdb-")
    cfg = {"bootstrap": bootstrap, "prefix": prefix, "chdb": chdb_dir, "events": len(corpus), **ARMS[arm]}
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(cfg)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY"):
                break
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
        topic = topic_name("events", prefix)
        t0 = time.monotonic()
        for i, (key, value) in enumerate(corpus):
            if rate and i % 500 == 0:
                ahead = i / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            while True:
                try:
                    p.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    p.poll(0.02)
            p.poll(0)
        p.flush(60)
        for line in proc.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        raise SystemExit(f"arm {arm}: the sink process ended without a result (rc {proc.wait()})")
    finally:
        if proc.poll() is None:
            proc.wait(60)
        shutil.rmtree(chdb_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--anatomy-reps", type=int, default=0,
                    help="also take one Avro insert apart (views, indexes, parse), this many times")
    ap.add_argument("--anatomy-block", type=int, default=5000)
    ap.add_argument("--events", type=int, default=120_000)
    ap.add_argument("--rate", type=float, default=12_000, help="events/s fed to the sink (0: as fast as produced)")
    ap.add_argument("--steps", type=int, default=6, help="steps per run in the SDK's runs (as bench/e2e.py)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--arms", default="before,after")
    a = ap.parse_args()
    if a.child:
        child(json.loads(a.child))
        return

    from agentstream.cli.embedded_broker import EmbeddedBroker

    arms = a.arms.split(",")
    broker = EmbeddedBroker().start()
    try:
        corpus = make_corpus(broker.bootstrap_servers, a.events, a.steps)
        print(f"corpus: {len(corpus)} events from the SDK; {a.rate:,.0f} ev/s into the sink; load {os.getloadavg()[0]:.1f}")
        results: dict[str, list[dict]] = {arm: [] for arm in arms}
        for r in range(a.rounds):
            for arm in (arms if r % 2 == 0 else arms[::-1]):
                res = run_arm(broker.bootstrap_servers, corpus, arm, f"{r}{arm}", a.rate)
                results[arm].append(res)
                print(f"round {r} {arm:>7}: {res['cpu_us_per_event']} us/event settled "
                      f"({res['cpu_us_per_event_stored']} at stored), {res['inserts']} inserts of "
                      f"{res['rows_per_insert']} rows, paths {res['rows_by_path']}, load {os.getloadavg()[0]:.1f}")
                for g, v in res["threads_us_per_event"].items():
                    if v:
                        print(f"    {v:8.2f} us/event  {g}")
                for g, v in res["insert_thread_us_per_event"].items():
                    print(f"        {v:8.2f} us/event  of which {g}")
                print(f"    clickhouse: {res['clickhouse']}; active parts {res['active_parts']}")
        summary: dict = {"events": len(corpus), "rate": a.rate, "rounds": a.rounds}
        if a.anatomy_reps:
            from sink_insert_anatomy import run_anatomy

            summary["anatomy"] = run_anatomy(corpus, a.anatomy_block, 6, a.anatomy_reps)
            an = summary["anatomy"]
            print(f"one Avro insert taken apart (calling thread's CPU, median of {a.anatomy_reps}): "
                  f"{an['everything'][0]:.1f} ms per insert + {an['everything'][1]:.2f} us per row in all")
            for k in an["fixed_ms_per_insert"]:
                print(f"    {an['fixed_ms_per_insert'][k]:6.1f} ms/insert  {an['us_per_row'][k]:6.2f} us/row  {k}")
        for arm in arms:
            rs = results[arm]
            if not rs:  # --rounds 0: the anatomy alone
                continue
            groups = {g for x in rs for g in x["threads_us_per_event"]}
            summary[arm] = {
                "cpu_us_per_event": statistics.median(x["cpu_us_per_event"] for x in rs),
                "cpu_us_per_event_stored": statistics.median(x["cpu_us_per_event_stored"] for x in rs),
                "rows_per_insert": statistics.median(x["rows_per_insert"] for x in rs),
                "threads_us_per_event": {g: round(statistics.median(x["threads_us_per_event"].get(g, 0.0) for x in rs), 2)
                                         for g in sorted(groups)},
                "runs": [x["cpu_us_per_event"] for x in rs],
            }
        digests = {arm: [x["digests"] for x in results[arm]] for arm in arms}
        flat = [d for ds in digests.values() for d in ds]
        common = set.intersection(*(set(d) for d in flat))  # the tables every arm has
        summary["outputs_identical"] = all({t: d[t] for t in common} == {t: flat[0][t] for t in common} for d in flat)
        if not summary["outputs_identical"]:
            print(f"OUTPUTS DIFFER: {json.dumps(digests)}")
        if "before" in arms and "after" in arms:
            ratios = [x["cpu_us_per_event"] / y["cpu_us_per_event"] for x, y in zip(results["after"], results["before"])]
            summary["ratio"] = round(statistics.median(ratios), 3)
            summary["ratios"] = [round(x, 3) for x in ratios]
            print(f"after / before CPU per event (settled), per round: {summary['ratios']}; median {summary['ratio']}")
        print(json.dumps(summary))
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
