"""The processors' CPU per event in process, this checkout against an older commit, side by side.

    python bench/processors_ab.py --before REV [--pairs 3] [--events 20000] [--corpus sdk]

The older commit's ``stream_processors/`` comes from ``git archive`` into a temporary tree (its C
field reader built there with the same compiler flags as setup.py), the other parts are this
checkout's; each arm is a fresh process running ``bench/processors.py --in-process`` on the same
pickled records (by default the real SDK's, bench/sdk_records.py), the arms alternating (before,
after, after, before, ...) so a neighbour's burst on the shared machine lands on both. Figures are
µs of CPU per event (process time, min of 5 passes per arm run), not wall time.

    python bench/processors_ab.py --before REV --interleaved [--rounds 20] [--corpus e2e]

One process holds both: the older ``stream_processors`` imported as a package of its own
(``sp_before``: its modules import each other relatively, so it runs whole beside this checkout's),
and ``Chain.process`` passes over the same records alternate between the two arms (before, after,
after, before, ...), each pass ~0.3 s. Why: on the shared machine a neighbour's burst lasts
seconds and lands on one arm process of the mode above (runs of one arm varied 14-31 µs in
minutes); pass by pass, both arms see it. Worker GC settings; min, quartile and median per arm.

Last line: JSON with each arm's runs and medians, and after/before of ``chain_process``.
"""
from __future__ import annotations

import argparse
import json
import pickle
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from baseline_tree import mixed_tree

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def before_tree(rev: str, into: Path) -> Path:
    """An ``agentstream`` package whose stream_processors is ``rev``'s, the rest this checkout's."""
    return mixed_tree(rev, "stream_processors", into)


def build_reader(sp: Path) -> None:
    """The C field reader of the stream_processors tree ``sp``, if it has one."""
    src = sp / "_fieldreader.c"
    if src.exists():
        out = src.with_name("_fieldreader" + sysconfig.get_config_var("EXT_SUFFIX"))
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-I" + sysconfig.get_paths()["include"], str(src),
                        "-o", str(out)], check=True)


def before_package(rev: str, into: Path) -> Path:
    """``rev``'s stream_processors as the package ``sp_before`` under ``into`` (C reader built)."""
    pkg = into / "sp_before"
    pkg.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "stream_processors"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(pkg), "--strip-components=1"], input=archive, check=True)
    build_reader(pkg)
    return into


def interleaved(corpus: Path, before_root: str, rounds: int) -> dict:
    """Both arms in this process, pass by pass (see the module's docstring)."""
    import gc
    import importlib
    import time

    sys.path.insert(0, before_root)
    data = pickle.loads(corpus.read_bytes())
    from agentstream.schemas import Codec

    def build(pkg: str):
        def mod(name: str):
            return importlib.import_module(f"{pkg}.{name}")
        if not mod("chain").__file__.startswith(before_root if pkg == "sp_before" else str(ROOT)):
            raise SystemExit(f"{pkg} was not imported from its own tree")
        rec = mod("records").InRecord
        ch = mod("chain").Chain(mod("settings").ProcessorsSettings(topic_prefix="p."), Codec(),
                                mod("redaction").Redactor(b"bench"), mod("policies").PolicyBook(), "p.fleet")
        recs = [rec("p.raw", i % 4, i, k, v, []) for i, (k, v) in enumerate(data)]
        state: dict[bytes, bytes] = {}

        def whole() -> None:
            state.clear()
            ch.redaction.redactor.cache_clear()  # ids and digests are new in every event of a live stream
            for i in range(0, len(recs), 2000):
                ch.process(recs[i:i + 2000], lambda p, k: state.get(k), lambda p, k, v: state.__setitem__(k, v))
        return whole

    arms = {"before": build("sp_before"), "after": build("agentstream.stream_processors")}
    for whole in arms.values():
        whole()  # compiled readers, caches warm
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)  # the worker's (raw_loop.hot_path_gc)
    runs: dict[str, list[float]] = {"before": [], "after": []}
    for i in range(rounds):
        for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
            t = time.process_time()
            arms[name]()
            runs[name].append(round((time.process_time() - t) / len(data) * 1e6, 3))
    return runs


def arm(corpus: Path, pythonpath: str | None, gc_mode: str = "worker") -> dict:
    env = None
    if pythonpath:
        import os
        env = {**os.environ, "PYTHONPATH": pythonpath}
    res = subprocess.run([sys.executable, str(HERE / "processors.py"), "--in-process", "--corpus-file", str(corpus),
                          "--gc", gc_mode],
                         capture_output=True, text=True, env=env, cwd=str(HERE))
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])["in_process_us"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the commit to compare with (its stream_processors/)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--corpus", choices=("sdk", "e2e", "synthetic"), default="sdk")
    ap.add_argument("--gc", choices=("worker", "default"), default="worker",
                    help="each arm's in-process figures with the worker's GC settings or CPython's defaults")
    ap.add_argument("--interleaved", action="store_true", help="both arms in one process, pass by pass")
    ap.add_argument("--rounds", type=int, default=20, help="with --interleaved: passes per arm")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    tmp = Path(tempfile.mkdtemp(prefix="processors-ab-"))
    try:
        run_pairs(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_pairs(args: argparse.Namespace, tmp: Path) -> None:
    from processors import make_events
    from sdk_records import e2e_records, sdk_records
    data = {"synthetic": make_events, "sdk": sdk_records, "e2e": e2e_records}[args.corpus](args.events)
    corpus = tmp / "corpus.pickle"
    corpus.write_bytes(pickle.dumps(data))
    if args.interleaved:
        runs_ = interleaved(corpus, str(before_package(args.before, tmp / "pkg")), args.rounds)
        figures = {name: {"min": min(r), "q25": sorted(r)[len(r) // 4], "median": statistics.median(r)}
                   for name, r in runs_.items()}
        # each round's two passes ran back to back: their ratio is the least disturbed figure
        paired = round(statistics.median(a / b for a, b in zip(runs_["after"], runs_["before"])), 3)
        ratio = round(figures["after"]["median"] / figures["before"]["median"], 3)
        print(f"chain_process µs/event (interleaved, {args.rounds} passes each): {json.dumps(figures)}; "
              f"after/before of the medians {ratio}, median of paired ratios {paired}", file=sys.stderr)
        print(json.dumps({"before": args.before, "corpus": args.corpus, "events": args.events, "mode": "interleaved",
                          "chain_process_us": figures, "chain_process_after_over_before": ratio,
                          "paired_after_over_before": paired, "min_after_over_before": round(figures["after"]["min"] / figures["before"]["min"], 3),
                          "runs": runs_}))
        return
    tree = str(before_tree(args.before, tmp / "before"))
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for i in range(args.pairs):
        for name in (("before", "after") if i % 2 == 0 else ("after", "before")):
            runs[name].append(arm(corpus, tree if name == "before" else None, args.gc))
            print(f"{name}: {json.dumps(runs[name][-1])}", file=sys.stderr)
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]
                      if isinstance(rs[0][k], float) and all(k in r for r in rs)} for name, rs in runs.items()}
    ratio = round(medians["after"]["chain_process"] / medians["before"]["chain_process"], 3)
    print(f"chain_process µs/event median: before {medians['before']['chain_process']}, "
          f"after {medians['after']['chain_process']} (after/before {ratio})", file=sys.stderr)
    print(json.dumps({"before": args.before, "corpus": args.corpus, "events": args.events, "pairs": args.pairs,
                      "gc": args.gc,
                      "median_us": medians, "chain_process_after_over_before": ratio, "runs": runs}))


if __name__ == "__main__":
    main()
