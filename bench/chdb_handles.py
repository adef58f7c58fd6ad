"""Point reads while inserts run, on the inserting chDB handle vs on a handle of their own.

    python bench/chdb_handles.py [--rounds 2]

On the embedded default the sink and the API share one chDB engine (one process). chDB runs
the calls of one handle one at a time, so a read on the handle that inserts waits behind the
insert. This measures both, alternating, in one run: a writer thread inserts 300k-row blocks
in a loop while 40 point reads (one row by primary key, 10 ms apart) are timed.
Last line: JSON with p50/p95 ms of each side per round and the median ratio of the p50s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time

import clickhouse_connect


def reads(client, n: int = 40) -> tuple[float, float]:
    xs = []
    for k in range(n):
        t = time.perf_counter()
        client.query("SELECT s FROM t WHERE k = {k:UInt64}", parameters={"k": k})
        xs.append((time.perf_counter() - t) * 1000)
        time.sleep(0.01)
    xs.sort()
    return round(xs[len(xs) // 2], 1), round(xs[int(len(xs) * 0.95)], 1)


def under_inserts(writer_client, reader_client) -> tuple[float, float]:
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            writer_client.command(f"INSERT INTO t SELECT number + {i}, repeat('x', 100) FROM numbers(300000)")
            i += 1

    th = threading.Thread(target=write)
    th.start()
    time.sleep(0.3)
    try:
        return reads(reader_client)
    finally:
        stop.set()
        th.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    path = tempfile.mkdtemp(prefix="chdb-handles-")
    handle = lambda: clickhouse_connect.get_client(dsn=f"chdb://{path}")  # noqa: E731
    sink = handle()
    sink.command("CREATE TABLE t (k UInt64, s String) ENGINE = MergeTree ORDER BY k")
    sink.command("INSERT INTO t SELECT number, toString(number) FROM numbers(200000)")
    api = handle()
    print(f"no inserts, reads p50/p95 ms: {reads(api)}")
    rounds = []
    for r in range(a.rounds):
        shared = under_inserts(sink, sink)
        own = under_inserts(sink, api)
        print(f"round {r + 1}: shared handle {shared}, own handle {own} (p50, p95 ms)")
        rounds.append({"shared_p50_ms": shared[0], "shared_p95_ms": shared[1],
                       "own_p50_ms": own[0], "own_p95_ms": own[1]})
    ratio = statistics.median(x["shared_p50_ms"] / max(0.1, x["own_p50_ms"]) for x in rounds)
    print(json.dumps({"rounds": rounds, "shared_vs_own_p50": round(ratio, 1)}))


if __name__ == "__main__":
    main()
