"""Processors throughput: the full chain worker (faust app: redaction + every detector, output to
events/alerts/commands/fleet) against a plain confluent-kafka consume → decode → encode → produce
loop, on the same pre-produced raw data, in one run on the embedded broker.

    python bench/processors.py [--events 100000]

Both sides read the same records (one generated list produced to two topic prefixes). The chain's
rate is measured from its first to its last processed record (read from the worker's /metrics), so
group join and state restore are excluded, as the plain loop's connect is. The machine is shared
and noisy, so the plain loop runs once before and once after the chain (on two copies of the data)
and ``plain_loop_ev_s`` is their mean; both runs are printed. Wall rates on a shared machine say
as much about the neighbours (the broker itself shares the cores) as about the code, so the worker's
CPU-seconds per event over the same interval are reported too (``chain_cpu_us_per_event``).

Where a worker's time goes per event, in process (no broker; min of 5 passes over the same
records): ``in_process_us`` times the stages of ``Chain.process`` on their own (the fastavro
decode it no longer does, the field reader, the byte prefilter, the detectors on already-read
events) and the whole of it.

Last line: JSON with chain_ev_s, chain_cpu_us_per_event, plain_loop_ev_s, ratio, in_process_us.
"""
from __future__ import annotations

import argparse
import gc
import json
import pickle
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from confluent_kafka import Consumer, Producer

from agentstream.cli.embedded_broker import EmbeddedBroker
from agentstream.schemas import EVENT, Codec, topic_name
from agentstream.schemas.topics import create_topics
from agentstream.stream_processors import synthetic as syn
from agentstream.stream_processors.chain import Chain
from agentstream.stream_processors.policies import PolicyBook
from agentstream.stream_processors.records import InRecord, Redacted
from agentstream.stream_processors.redaction import Redactor
from agentstream.stream_processors.redaction import prefilter
from agentstream.stream_processors.settings import ProcessorsSettings
from agentstream.stream_processors.worker_process import start_worker
try:  # an older checkout's stream_processors (bench/processors_ab.py) may lack it
    from agentstream.stream_processors.raw_loop import GC_THRESHOLDS as WORKER_GC_THRESHOLDS
except ImportError:
    WORKER_GC_THRESHOLDS = (50_000, 10, 10)
from proc_cpu import process_cpu
from sdk_records import e2e_records, sdk_records


def make_events(n: int) -> list[tuple[bytes, bytes]]:
    codec = Codec()
    out = []
    i = 0
    while len(out) < n:
        tenant, run = f"tenant-{i % 5}", f"run-{i}"
        evs = [syn.run_start(tenant, run, attributes={"user.id": f"u{i}"})]
        for s in range(1, 7):
            attrs = {"http.route": "/v1/search", "note": f"step {s} of the plan"}
            if s == 3 and i % 10 == 0:
                attrs["note"] = "contact jane.doe@example.com with key AKIAIOSFODNN7EXAMPLE"
            evs.append(syn.llm_step(tenant, run, s, cost_usd=0.001, attributes=attrs) if s % 2 else
                       syn.step(tenant, run, s, name=f"tool{s}", args_digest=f"d{s}", attributes=attrs))
        evs.append(syn.run_end(tenant, run, 7))
        out.extend((run.encode(), codec.encode(EVENT, e)) for e in evs)
        i += 1
    return out[:n]


def produce(bootstrap: str, topic: str, data: list[tuple[bytes, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                  "partitioner": "murmur2_random"})
    for k, v in data:
        while True:
            try:
                p.produce(topic, v, k)
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)


def plain_loop(bootstrap: str, prefix: str, n: int) -> float:
    codec = Codec()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "plain-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "enable.auto.commit": False})
    c.subscribe([topic_name("raw", prefix)])
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000})
    out_topic = topic_name("events", prefix)
    seen = 0
    t0 = None
    while seen < n:
        msgs = c.consume(2000, 1.0)
        if msgs and t0 is None:
            t0 = time.perf_counter()
        for m in msgs:
            if m.error():
                continue
            rec = codec.decode_as(EVENT, m.value())
            while True:
                try:
                    p.produce(out_topic, codec.encode(EVENT, rec), m.key())
                    break
                except BufferError:
                    p.poll(0.05)
            seen += 1
        p.poll(0)
    p.flush(60)
    c.commit(asynchronous=False)
    dt = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return seen / dt


def chain(bootstrap: str, prefix: str, n: int, tmp: Path) -> tuple[float, float]:
    """(events/s, the worker's CPU µs per event), both from its first to its last record."""
    w = start_worker(bootstrap, prefix, "bench-" + uuid.uuid4().hex[:6], tmp / "data", tmp / "worker.log")
    try:
        w.wait_ready(120)
        start: list[tuple[float, float]] = []  # (worker CPU, records read) when first seen

        def first_seen(seen: float) -> None:
            start.append((process_cpu(w.proc.pid), seen))

        rate = _rate(w.records_in, n, on_first=first_seen)
        if rate is None:
            raise RuntimeError(f"chain processed {w.records_in()} of {n}; log {w.log_path}\n{w.log_tail()}")
        # the CPU from the first records seen on, over the records read from then on (as the rate)
        cpu0, seen0 = start[0]
        return rate, (process_cpu(w.proc.pid) - cpu0) / (n - seen0) * 1e6
    finally:
        w.stop()


def in_process(data: list[tuple[bytes, bytes]], rounds: int = 5, worker_gc: bool = True) -> dict[str, float]:
    """µs per event of each stage of ``Chain.process`` and of the whole, min of ``rounds`` passes,
    and the share of records that take the full path. Runs on the code before the text
    prefilter too (bench/processors_ab.py puts an older checkout on PYTHONPATH): a stage that
    code lacks is left out.

    ``worker_gc``: the cyclic GC as the worker runs it (``raw_loop.hot_path_gc``: start-up objects
    frozen, young threshold 50,000), so the figures are the worker's and a young collection's
    timing (3-4 µs an event with CPython's defaults, varying with the heap) is not in them;
    False: CPython's defaults, as the figures before 2026-12-06 were taken."""
    if not worker_gc:
        return _in_process(data, rounds)
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    try:
        return _in_process(data, rounds)
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _in_process(data: list[tuple[bytes, bytes]], rounds: int) -> dict[str, float]:
    codec = Codec()
    ch = Chain(ProcessorsSettings(topic_prefix="p."), codec, Redactor(b"bench"), PolicyBook(), "p.fleet")
    recs = [InRecord("p.raw", i % 4, i, k, v, []) for i, (k, v) in enumerate(data)]
    state: dict[bytes, bytes] = {}

    def whole() -> None:
        state.clear()
        for i in range(0, len(recs), 2000):
            ch.process(recs[i:i + 2000], lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))

    stage = ch.redaction
    reader = stage.reader
    read = [Redacted(got[0], r) for r in recs if (got := reader.read(r.value)) is not None]

    def detect() -> None:
        state.clear()
        for i in range(0, len(read), 2000):
            ch.detect(read[i:i + 2000], lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))

    def each(fn: Callable[[bytes], object], items: list | None = None) -> Callable[[], None]:
        def run() -> None:
            for v in items if items is not None else [v for _, v in data]:  # results dropped as they come
                fn(v)
        return run

    # The splice of a passed record: its bytes with the summary where the null one was.
    marks = [(v, got[1]) for _, v in data if (got := reader.read(v)) is not None and got[1] >= 0]

    def splice() -> None:
        summary = stage.patcher.summary
        for v, at in marks:
            b"".join((v[:at], summary("default"), v[at + 1:]))

    stages: dict[str, Callable[[], None]] = {"fastavro_decode": each(codec.decode), "field_reader": each(reader.read)}
    if hasattr(reader, "read_text"):  # the record's text, judged by its strings (this code)
        texts = [got for _, v in data if (got := reader.read_text(v)) is not None]
        stages["field_reader_text"] = each(reader.read_text)
        stages["prefilter"] = each(lambda g: prefilter.text_may_need_redaction(*g[2:], stage.redactor), texts)
    else:  # the byte prefilter over the whole record (the code before)
        stages["prefilter"] = each(prefilter.may_need_redaction)
    stages.update(detectors=detect, splice=splice, chain_process=whole)
    out: dict[str, float] = {}
    for name, fn in stages.items():
        best = float("inf")
        for _ in range(rounds):
            stage.redactor.cache_clear()  # ids and digests are new in every event of a live stream
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        out[name] = round(best / len(data) * 1e6, 2)
    before = stage.counts.events
    passed0 = stage.counts.passed_bytes
    whole()
    out["full_path_share"] = round(1 - (stage.counts.passed_bytes - passed0) / (stage.counts.events - before), 4)
    out["field_reader_native"] = getattr(reader, "is_native", False)  # False: before the C reader
    return out


def scaled(bootstrap: str, data: list[tuple[bytes, bytes]], partitions: int, workers: int,
           tmp: Path) -> dict:
    """``workers`` chain workers in one group on a fresh ``partitions``-partition raw topic: all
    join first (so no rebalance runs inside the timing), then the data is produced and the rate
    runs from the first to the last record read by any of them. CPU-seconds per event are summed
    over the workers (robust to a busy machine, unlike ev/s)."""
    prefix = f"s{uuid.uuid4().hex[:5]}."
    create_topics(bootstrap, prefix=prefix, partitions=partitions)
    app = "scale-" + uuid.uuid4().hex[:6]
    ws = [start_worker(bootstrap, prefix, app, tmp / f"{app}-{i}", tmp / f"{app}-{i}.log") for i in range(workers)]
    try:
        for w in ws:
            w.wait_ready(180)
        time.sleep(2.0)  # let the last join's rebalance settle
        cpu0 = sum(process_cpu(w.proc.pid) for w in ws)
        threading.Thread(target=produce, args=(bootstrap, topic_name("raw", prefix), data), daemon=True).start()
        n = len(data)
        rate = _rate(lambda: sum(w.records_in() for w in ws), n)
        if rate is None:
            raise RuntimeError(f"{workers} workers did not process all {n} records")
        cpu = sum(process_cpu(w.proc.pid) for w in ws) - cpu0
        return {"workers": workers, "partitions": partitions, "ev_s": round(rate),
                "cpu_us_per_event": round(cpu / n * 1e6, 1)}
    finally:
        for w in ws:
            w.stop()


def _rate(records_in, n: int, timeout: float = 600.0, on_first=lambda _seen: None) -> float | None:
    """Records/s from the first to the last of ``n`` records read (``records_in()`` polled every
    50 ms), so group join and state restore are outside the clock; None if not all were read.
    ``on_first(seen)`` runs when the first records are seen (to start other meters on the same
    clock and count; a worker can be well into the data by then, its /metrics answering late)."""
    t_first, last = None, 0.0
    deadline = time.monotonic() + timeout
    while last < n and time.monotonic() < deadline:
        last = records_in()
        if last > 0 and t_first is None:
            on_first(last)
            t_first = (time.perf_counter(), last)
        time.sleep(0.05)
    if t_first is None or last < n:
        return None
    if t_first[1] >= n:  # all read before the first answer: no window to time
        raise RuntimeError(f"all {n} events were read before the worker's /metrics first answered: "
                           "too few to measure, raise --events (the default 100,000 is enough)")
    return (n - t_first[1]) / (time.perf_counter() - t_first[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--scaling", action="store_true",
                    help="also: one worker, then two workers, on the same partitions, side by side")
    ap.add_argument("--corpus", choices=("synthetic", "sdk", "e2e"), default="synthetic",
                    help="the bench's synthetic events, the real SDK's records (bench/sdk_records.py), or "
                         "the runs bench/e2e.py's agents emit")
    ap.add_argument("--in-process", action="store_true",
                    help="only the in-process stage figures (no broker, no worker)")
    ap.add_argument("--corpus-file", help="records pickled by bench/processors_ab.py (both arms read the same)")
    ap.add_argument("--gc", choices=("worker", "default"), default="worker",
                    help="in-process figures with the worker's GC settings (hot_path_gc) or CPython's defaults")
    args = ap.parse_args()
    if args.corpus_file:
        data = pickle.loads(Path(args.corpus_file).read_bytes())
    else:
        data = {"synthetic": make_events, "sdk": sdk_records, "e2e": e2e_records}[args.corpus](args.events)
    if args.in_process:
        stages = in_process(data[:20000], worker_gc=args.gc == "worker")
        print(f"in process ({args.corpus}, {args.gc} gc), µs/event: {json.dumps(stages)}", file=sys.stderr)
        print(json.dumps({"corpus": args.corpus, "events": len(data[:20000]), "gc": args.gc,
                          "in_process_us": stages}))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-processors-"))
    broker = EmbeddedBroker(log_path=str(tmp / "tansu.log")).start()
    try:
        bs = broker.bootstrap_servers
        prefixes = {}
        for which in ("plain", "chain", "plain2"):
            prefixes[which] = f"b{uuid.uuid4().hex[:5]}."
            create_topics(bs, prefix=prefixes[which], partitions=args.partitions)
            produce(bs, topic_name("raw", prefixes[which]), data)
        print(f"{args.events} events on raw ({args.partitions} partitions), "
              f"{sum(len(v) for _, v in data) / len(data):.0f} B/event", file=sys.stderr)
        plain1 = plain_loop(bs, prefixes["plain"], args.events)
        print(f"plain confluent-kafka consume->decode->encode->produce: {plain1:,.0f} ev/s", file=sys.stderr)
        chain_rate, chain_cpu = chain(bs, prefixes["chain"], args.events, tmp)
        print(f"full chain worker (redaction + detectors + state): {chain_rate:,.0f} ev/s, "
              f"{chain_cpu:.1f} µs CPU/event", file=sys.stderr)
        plain2 = plain_loop(bs, prefixes["plain2"], args.events)
        print(f"plain loop again, after the chain: {plain2:,.0f} ev/s", file=sys.stderr)
        plain = (plain1 + plain2) / 2
        scaling = []
        if args.scaling:
            for workers in (1, 2):
                scaling.append(scaled(bs, data, args.partitions, workers, tmp))
                print(f"scaling: {json.dumps(scaling[-1])}", file=sys.stderr)
        stages = in_process(data[:20000], worker_gc=args.gc == "worker")
        print(f"in process, µs/event: {json.dumps(stages)}", file=sys.stderr)
        print(json.dumps({"corpus": args.corpus, "events": args.events, "chain_ev_s": round(chain_rate),
                          "chain_cpu_us_per_event": round(chain_cpu, 1), "plain_loop_ev_s": round(plain),
                          "plain_runs_ev_s": [round(plain1), round(plain2)],
                          "ratio": round(chain_rate / plain, 3), "scaling": scaling, "in_process_us": stages}))
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # the workers' data dirs and the broker's log


if __name__ == "__main__":
    main()
