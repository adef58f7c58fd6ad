"""Two runs' steps aligned, compared step by step and in total. Pure: run details in, diff out.

Alignment is a global sequence alignment (Needleman-Wunsch) over the steps in order, so an
inserted step shifts nothing after it. Two steps may pair only if they have the same kind and
name; a pair scores higher when the argument digest (tool steps) or the model (LLM steps) also
match, so a run that calls the same tool with other arguments shows a *changed* step rather than
a removal and an insertion. The common prefix and suffix are matched first; a middle larger than
``MAX_CELLS`` falls back to difflib's matching blocks on the exact keys (still an alignment, not
positional), which keeps memory bounded on very long runs.
"""
from __future__ import annotations

import difflib
from typing import Any

MAX_CELLS = 500_000  # about 0.5-1 s of pure Python on a busy core; beyond it, difflib
EXACT, SIMILAR = 3, 2  # scores: same kind+name+digest; same kind+name only. Gaps score 0.

Key = tuple[str, str, str]  # step_key(): kind, name, argument digest or model
Pair = tuple[int | None, int | None]  # indexes into a and b; None is a gap on that side


def step_key(s: dict[str, Any]) -> Key:
    """(kind, name, argument digest or model): what makes two steps "the same step"."""
    tool = s.get("tool") or {}
    llm = s.get("llm") or {}
    return (s["step_kind"], s["name"], tool.get("args_digest") or llm.get("request_model") or "")


def _score(a: Key, b: Key) -> int:
    if a == b:
        return EXACT
    return SIMILAR if a[:2] == b[:2] else -1


def _nw(a: list[Key], b: list[Key]) -> list[Pair]:
    n, m = len(a), len(b)
    # score table and traceback in flat lists: (n+1)*(m+1) ints, bounded by MAX_CELLS
    w = m + 1
    score = [0] * ((n + 1) * w)
    kind_name_b = [x[:2] for x in b]
    for i in range(1, n + 1):
        ai = a[i - 1]
        kn = ai[:2]
        row, prev = i * w, (i - 1) * w
        left = 0
        for j in range(1, m + 1):
            # the hot loop: _score inlined, and the left neighbour kept in a local
            up = score[prev + j]
            best = up if up > left else left
            bj = b[j - 1]
            if bj == ai:
                diag = score[prev + j - 1] + EXACT
                if diag > best:
                    best = diag
            elif kind_name_b[j - 1] == kn:
                diag = score[prev + j - 1] + SIMILAR
                if diag > best:
                    best = diag
            score[row + j] = best
            left = best
    pairs: list[Pair] = []
    i, j = n, m
    # Traceback (from the end) prefers a match, then an insertion, then a removal: deterministic
    # for ties, and where a step was replaced the removal reads before the insertion.
    while i > 0 or j > 0:
        here = score[i * w + j]
        if i > 0 and j > 0:
            s = _score(a[i - 1], b[j - 1])
            if s > 0 and here == score[(i - 1) * w + j - 1] + s:
                pairs.append((i - 1, j - 1))
                i, j = i - 1, j - 1
                continue
        if j > 0 and here == score[i * w + j - 1]:
            pairs.append((None, j - 1))
            j -= 1
        else:
            pairs.append((i - 1, None))
            i -= 1
    pairs.reverse()
    return pairs


def _blocks(a: list[Key], b: list[Key]) -> list[Pair]:
    pairs: list[Pair] = []
    ia = ib = 0
    for blk in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        pairs.extend((i, None) for i in range(ia, blk.a))
        pairs.extend((None, j) for j in range(ib, blk.b))
        pairs.extend((blk.a + k, blk.b + k) for k in range(blk.size))
        ia, ib = blk.a + blk.size, blk.b + blk.size
    return pairs


def align(a: list[Key], b: list[Key]) -> list[Pair]:
    """Pairs of indexes into a and b (None = gap), in order."""
    pre = 0
    while pre < len(a) and pre < len(b) and a[pre] == b[pre]:
        pre += 1
    suf = 0
    while suf < len(a) - pre and suf < len(b) - pre and a[-1 - suf] == b[-1 - suf]:
        suf += 1
    mid_a, mid_b = a[pre:len(a) - suf], b[pre:len(b) - suf]
    if (len(mid_a) + 1) * (len(mid_b) + 1) <= MAX_CELLS:
        mid = _nw(mid_a, mid_b)
    else:
        mid = _blocks(mid_a, mid_b)
    out: list[Pair] = [(i, i) for i in range(pre)]
    out += [(None if x is None else x + pre, None if y is None else y + pre) for x, y in mid]
    out += [(len(a) - suf + k, len(b) - suf + k) for k in range(suf)]
    return out


def _tokens(s: dict[str, Any]) -> int:
    llm = s.get("llm") or {}
    return int(llm.get("input_tokens", 0)) + int(llm.get("output_tokens", 0))


def _cost(s: dict[str, Any]) -> float:
    return float((s.get("llm") or {}).get("cost_usd", 0.0))


def _brief(s: dict[str, Any]) -> dict[str, Any]:
    return {"seq": s["seq"], "step_id": s["step_id"], "step_kind": s["step_kind"], "name": s["name"],
            "status": s["status"], "latency_ms": s["latency_ms"], "tokens": _tokens(s),
            "cost_usd": round(_cost(s), 8), "key": step_key(s)[2]}


def _run_totals(d: dict[str, Any]) -> dict[str, Any]:
    r = d["run"]
    return {"status": r["status"], "outcome": r["outcome"], "duration_ms": r["duration_ms"],
            "steps": len(d["steps"]), "failures": len(d["failures"]), "retries": r["retry_count"],
            "tokens": r["input_tokens"] + r["output_tokens"], "cost_usd": round(r["cost_usd"], 8)}


def diff_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Pure: aligns run a (baseline) with run b; ``ops`` lists every aligned position."""
    sa = sorted(a["steps"], key=lambda s: s["seq"])
    sb = sorted(b["steps"], key=lambda s: s["seq"])
    ka, kb = [step_key(s) for s in sa], [step_key(s) for s in sb]
    ops: list[dict[str, Any]] = []
    counts = {"same": 0, "changed": 0, "inserted": 0, "removed": 0}
    first = None
    for i, j in align(ka, kb):
        entry: dict[str, Any]
        if i is not None and j is not None:
            x, y = sa[i], sb[j]
            changes = []
            if ka[i][2] != kb[j][2]:
                changes.append("arguments" if (x.get("tool") or y.get("tool")) else "model")
            if x["status"] != y["status"]:
                changes.append("status")
            if x["attempt"] != y["attempt"]:
                changes.append("attempt")
            op = "changed" if changes else "same"
            entry = {"op": op, "a": _brief(x), "b": _brief(y), "changes": changes,
                     "delta": {"latency_ms": round(y["latency_ms"] - x["latency_ms"], 3),
                               "tokens": _tokens(y) - _tokens(x),
                               "cost_usd": round(_cost(y) - _cost(x), 8)}}
        elif i is not None:
            x = sa[i]
            op = "removed"
            entry = {"op": op, "a": _brief(x), "b": None, "changes": [],
                     "delta": {"latency_ms": -x["latency_ms"] + 0.0, "tokens": -_tokens(x),
                               "cost_usd": round(-_cost(x), 8) + 0.0}}  # + 0.0: never -0.0
        else:
            assert j is not None, "align() never pairs a gap with a gap"
            y = sb[j]
            op = "inserted"
            entry = {"op": op, "a": None, "b": _brief(y), "changes": [],
                     "delta": {"latency_ms": y["latency_ms"], "tokens": _tokens(y),
                               "cost_usd": round(_cost(y), 8)}}
        entry["index"] = len(ops)
        counts[op] += 1
        if first is None and op != "same":
            first = entry["index"]
        ops.append(entry)
    ta, tb = _run_totals(a), _run_totals(b)
    delta = {k: (round(tb[k] - ta[k], 8) if isinstance(ta[k], (int, float)) and isinstance(tb[k], (int, float))
                 and not isinstance(ta[k], bool) else None)
             for k in ("duration_ms", "steps", "failures", "retries", "tokens", "cost_usd")}
    return {
        "a": {"run_id": a["run"]["run_id"], "agent_id": a["run"]["agent_id"],
              "agent_version": a["run"]["agent_version"], **ta},
        "b": {"run_id": b["run"]["run_id"], "agent_id": b["run"]["agent_id"],
              "agent_version": b["run"]["agent_version"], **tb},
        "total_delta": {**delta, "status_changed": ta["status"] != tb["status"]},
        "counts": counts,
        "first_divergence": first,
        "identical": first is None and ta["status"] == tb["status"],
        "ops": ops,
    }
