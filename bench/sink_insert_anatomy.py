"""One Avro insert of the sink taken apart: what each view and index on its way costs, as a fixed
cost per insert and a cost per row (bench/sink_cpu.py --anatomy-reps N runs it; alone:
``python bench/sink_insert_anatomy.py '<json config>'`` is the child it starts per repetition).

Each repetition is its own process and chDB directory (one owner per directory): the corpus's
records are put into Avro containers as the sink makes them, inserted with the sink's
settings (no dedup, so the same containers go in at every step), and then the next part is
taken away (``ANATOMY``, cumulative), so each step's difference is what that part costs.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Taken away one after the other (cumulative), so each step's difference is what that part costs.
ANATOMY = [
    ("runs_mv", ["DROP VIEW runs_mv"]),
    ("step_rollup_hourly_mv", ["DROP VIEW step_rollup_hourly_mv"]),
    ("cost_rollup_daily(_user)_mv", ["DROP VIEW cost_rollup_daily_mv", "DROP VIEW cost_rollup_daily_user_mv"]),
    ("events skip indexes", None),  # every index of events, read from system.data_skipping_indices
    ("events part write and its other views (the staging view's SELECT into a Null table)", None),
    ("the staging view's SELECT (Avro parse only)", None),
]


def anatomy(cfg: dict) -> None:
    """One chDB directory: Avro containers of the corpus inserted as the sink inserts them, CPU
    of the calling thread (chDB runs an insert, its views and its part writes there; merges run
    on their own threads and are left out), as a fixed cost per insert (10-row containers) and
    a cost per row (``block``-row containers, less the fixed cost); then the next part is taken
    away."""
    from agentstream.schemas import Codec
    from agentstream.sink import apply_migrations, make_client
    from agentstream.sink.containers import ContainerBuilder

    corpus = [bytes.fromhex(v) for v in json.loads(Path(cfg["corpus"]).read_text())]
    client = make_client(f"chdb://{cfg['chdb']}")
    apply_migrations(client)

    class Msg:
        __slots__ = ("_v",)

        def __init__(self, v: bytes) -> None:
            self._v = v

        def value(self) -> bytes:
            return self._v

    builder = ContainerBuilder(Codec().resolver.schema_for_id)

    def containers(n: int, count: int) -> list[tuple[str, bytes]]:
        out = []
        for i in range(count):
            start = (i * n) % (len(corpus) - n)
            cs, rest = builder.split([Msg(v) for v in corpus[start:start + n]], lambda _t: 30)
            assert not rest and len(cs) == 1, "the corpus is one staged schema"
            out.append((cs[0].table, cs[0].data()))
        return out

    block, per_step = cfg["block"], cfg["per_step"]
    small, large = containers(10, 12), containers(block, per_step)
    # no dedup: the same containers go in at every step
    settings = {"insert_deduplicate": 0, "max_insert_block_size": block + 1,
                "output_format_json_escape_forward_slashes": 0, "short_circuit_function_evaluation": "enable"}

    def cpu_per_insert(blocks: list[tuple[str, bytes]]) -> float:
        client.raw_insert(blocks[0][0], insert_block=blocks[0][1], fmt="Avro", settings=settings)  # warm
        t0 = time.thread_time()
        for table, data in blocks:
            client.raw_insert(table, insert_block=data, fmt="Avro", settings=settings)
        return (time.thread_time() - t0) / len(blocks)

    def measure() -> tuple[float, float]:
        fixed = cpu_per_insert(small)
        return fixed * 1e3, max(0.0, cpu_per_insert(large) - fixed) / (block - 10) * 1e6

    table = small[0][0]
    steps = [("everything", measure())]
    for what, stmts in ANATOMY:
        if what == "events skip indexes":
            names = [r[0] for r in client.query("SELECT name FROM system.data_skipping_indices "
                                                "WHERE table = 'events' AND database = currentDatabase()").result_rows]
            stmts = [f"ALTER TABLE events DROP INDEX {n}" for n in names]
        elif what.startswith("events part write"):
            # every other view on events first (0010's run_events_mv and any later one)
            views = [r[0] for r in client.query(
                "SELECT name FROM system.tables WHERE engine = 'MaterializedView' AND database = currentDatabase() "
                "AND name NOT LIKE 'events_avro%' AND match(create_table_query, 'FROM events(\\\\s|$)')"
            ).result_rows]
            stmts = [f"DROP VIEW {v}" for v in views] + [
                "CREATE TABLE events_null AS events ENGINE = Null", "EXCHANGE TABLES events AND events_null"]
        elif what.startswith("the staging view"):
            view = {"events_avro_staging": "events_avro_mv", "events_avro_staging_v2": "events_avro_v2_mv"}[table]
            stmts = [f"DROP VIEW {view}"]
        for st in stmts or []:
            client.command(st)
        steps.append((what, measure()))
    out = {"block": block, "after_removing": {w: [round(f, 1), round(r, 2)] for w, (f, r) in steps},
           "fixed_ms_per_insert": {w: round(steps[i][1][0] - steps[i + 1][1][0], 1) for i, (w, _) in enumerate(ANATOMY)},
           "us_per_row": {w: round(steps[i][1][1] - steps[i + 1][1][1], 2) for i, (w, _) in enumerate(ANATOMY)}}
    last = "Avro parse into the staging table (Null engine), the insert itself"
    out["fixed_ms_per_insert"][last] = round(steps[-1][1][0], 1)
    out["us_per_row"][last] = round(steps[-1][1][1], 2)
    print("RESULT " + json.dumps(out), flush=True)


def run_anatomy(corpus: list[tuple[bytes, bytes]], block: int, per_step: int, reps: int) -> dict:
    path = Path(tempfile.mkdtemp(prefix="sinkcpu-corpus-")) / "corpus.json"
    path.write_text(json.dumps([v.hex() for _, v in corpus]))
    runs = []
    for _ in range(reps):
        chdb_dir = tempfile.mkdtemp(prefix="sinkcpu-anat-")
        try:
            res = subprocess.run([sys.executable, __file__, json.dumps(
                {"corpus": str(path), "chdb": chdb_dir, "block": block, "per_step": per_step})],
                capture_output=True, text=True, check=True)
        finally:
            shutil.rmtree(chdb_dir, ignore_errors=True)
        runs.append(json.loads(res.stdout.split("RESULT ", 1)[1]))
    shutil.rmtree(path.parent, ignore_errors=True)
    keys = list(runs[0]["fixed_ms_per_insert"])
    return {"block": block, "reps": reps,
            "everything": [statistics.median(r["after_removing"]["everything"][i] for r in runs) for i in (0, 1)],
            "fixed_ms_per_insert": {k: round(statistics.median(r["fixed_ms_per_insert"][k] for r in runs), 1) for k in keys},
            "us_per_row": {k: round(statistics.median(r["us_per_row"][k] for r in runs), 2) for k in keys}}


if __name__ == "__main__":
    anatomy(json.loads(sys.argv[1]))
