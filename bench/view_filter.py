"""What migration 0014's skip condition costs an insert into events: the same ranges stored by the
sink's writer into a schema at 0013 (views without it) and one at 0014, alternating.

0014 adds ``WHERE getSetting('log_comment') != 'agentstream:no-derived-views'`` to the five
views that derive tables from events (sink/view_repair.py says why). The condition is constant
per insert; this measures whether the views' work per insert changed. Each round stores a fresh
flush (a repeat would be dropped by the dedup tokens and look fast) of ``--events`` records on
the direct path into each schema, the order of the two alternating; the figure is the median
per-round ratio.

Usage: python bench/view_filter.py [--events 20000] [--rounds 8]
Last line: JSON with ms_0013, ms_0014 (medians) and ratio (0014 / 0013, median of rounds).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from agentstream.schemas import EVENT, Codec
from agentstream.sink import event_rows, make_client
from agentstream.sink.ledger import OffsetRange
from agentstream.sink.retention import RetentionBook
from agentstream.sink.storage import MIGRATIONS_DIR, apply_migrations
from agentstream.sink.tables import TABLE_SPECS
from agentstream.sink.writer import RangeWriter
from test_sink_support import Msg, run_events


def schema_dir(root: Path, upto: int) -> Path:
    out = root / f"migrations_{upto:04d}"
    out.mkdir()
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(f.name[:4]) <= upto:
            shutil.copy(f, out / f.name)
    return out


def flush(codec: Codec, tag: str, n: int) -> list:
    events = []
    i = 0
    while len(events) < n:
        events.extend(run_events(f"bench-{tag}", f"run-{tag}-{i}", n_steps=8))
        i += 1
    topic = f"{tag}.events"
    msgs = [Msg(codec.encode(EVENT, e), o, topic, 0) for o, e in enumerate(events[:n])]
    return [({"range": OffsetRange(topic, 0, 0, len(msgs) - 1, int(time.time() * 1000),
                                   avro=event_rows.WIRE_DIRECT)}, msgs)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    codec, spec = Codec(), TABLE_SPECS["events"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        writers = {}
        dsn = f"chdb://{root / 'chdb'}"  # one chDB path per process: a database per schema
        base = make_client(dsn)
        for upto in (13, 14):
            base.command(f"CREATE DATABASE IF NOT EXISTS v{upto}")
            client = make_client(dsn, database=f"v{upto}")
            apply_migrations(client, schema_dir(root, upto))
            writers[upto] = RangeWriter(lambda c=client: c, codec, RetentionBook(30, 90), "bench")
            writers[upto].store_group(spec, flush(codec, f"warm{upto}", 2000))  # first-insert costs
        ms: dict[int, list[float]] = {13: [], 14: []}
        for r in range(args.rounds):
            for upto in ((13, 14) if r % 2 == 0 else (14, 13)):
                parts = flush(codec, f"r{r}s{upto}", args.events)
                t0 = time.perf_counter()
                writers[upto].store_group(spec, parts)
                ms[upto].append((time.perf_counter() - t0) * 1000)
    ratios = [b / a for a, b in zip(ms[13], ms[14])]
    fig = {"events": args.events, "rounds": args.rounds, "ms_0013": round(statistics.median(ms[13]), 1),
           "ms_0014": round(statistics.median(ms[14]), 1), "ratio": round(statistics.median(ratios), 3)}
    print(f"insert of {args.events} events, direct path, median of {args.rounds} alternating rounds: "
          f"views as of 0013 {fig['ms_0013']} ms, as of 0014 {fig['ms_0014']} ms, ratio {fig['ratio']}")
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
