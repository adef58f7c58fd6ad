"""How a redaction corpus is scored, shared by ``redaction_corpus.py`` and ``redaction_heldout.py``
(their generators share nothing; their yardstick must be the same).

Lenient: the planted value no longer appears in the output. Strict: no run of 4+ alphanumerics of
it survives either, beyond the copies the text already held outside the value ("mail" of
mail.co.uk). Replacement tokens ("[REDACTED:email]" holds "mail") are not leaks.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from typing import Any, Callable

RUN = re.compile(r"[A-Za-z0-9]{4,}")
TOKEN = re.compile(r"\[REDACTED:[a-z_]+\]|\[[a-z_]+:hmac:[0-9a-f]{16}\]")


def outcome(text: str, out: str, value: str) -> tuple[bool, bool]:
    """(lenient, strict) for one planted ``value`` of ``text`` redacted into ``out``."""
    lenient = value not in out
    bare, rest = TOKEN.sub(" ", out), text.replace(value, " ")
    return lenient, lenient and not any(bare.count(run) > rest.count(run) for run in RUN.findall(value))


class Tally:
    """Lenient hits, strict hits and totals per key."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])

    def add(self, keys: tuple[str, ...], lenient: bool, strict: bool) -> None:
        for k in keys:
            agg = self.counts[k]
            agg[0] += lenient
            agg[1] += strict
            agg[2] += 1

    def rates(self) -> dict[str, dict[str, float]]:
        return {k: {"lenient": v[0] / v[2], "strict": v[1] / v[2], "n": v[2]} for k, v in sorted(self.counts.items())}


def main(generate: Callable[[int, int], Any], evaluate: Callable[[Any, Callable[[str], str]], dict],
         texts: int, seed: int, sections: tuple[str, ...], min_name: str) -> None:
    """The benches' command line: report ``sections`` of ``evaluate``'s result, misses and lost
    look-alikes on stderr, and the JSON line last (``min_name``: the lowest per-key recall of the
    first section)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=texts)
    ap.add_argument("--seed", type=int, default=seed)
    args = ap.parse_args()
    from agentstream.stream_processors.redaction import DEFAULT_ACTIONS, Redactor
    red = Redactor(b"bench-key")
    rep = evaluate(generate(args.texts, args.seed), lambda t: red.redact_text(t, DEFAULT_ACTIONS, {}))
    for section in sections:
        print(section)
        for k, v in rep[section].items():
            print(f"  {k:26s} lenient {v['lenient']:.3f}  strict {v['strict']:.3f}  (n={v['n']})")
    print(f"look-alikes kept {rep['lookalikes_kept']:.4f} of {rep['lookalikes']}")
    for m in rep["misses"][:60]:
        print("  miss", m, file=sys.stderr)
    for x in rep.get("lost", []):
        print("  lost", x, file=sys.stderr)
    first = rep[sections[0]]
    overall = first["overall"]
    print(json.dumps({"texts": args.texts, "seed": args.seed, "recall": round(overall["lenient"], 4),
                      "recall_strict": round(overall["strict"], 4),
                      min_name: round(min(v["lenient"] for v in first.values()), 4),
                      "lookalikes_kept": round(rep["lookalikes_kept"], 4)}))
