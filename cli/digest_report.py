"""``agentstream digest``: what a tenant's fleet did over a period, in plain words, beside the
period before it. Pure: the query API's answers in (``/v1/stats`` for both periods,
``/v1/alerts``, ``/v1/drift``, ``/v1/costs``), one digest out, rendered as Markdown (a terminal,
a chat channel or an issue reads it) or kept as JSON.

What needs attention is decided here, with the rules written down:

- a version whose failure rate rose by more than ``FAILURE_RISE_PTS`` points on the period
  before, with at least ``MIN_RUNS`` finished runs in both;
- a version new in the period, with ``MIN_RUNS`` finished runs, failing at least twice the rest
  of the fleet's rate and by ``FAILURE_RISE_PTS`` points more;
- a version the drift detector flags (``/v1/drift``: a significant change on its baseline);
- a version whose spend rose by more than ``COST_RISE_PCT`` percent, and by at least
  ``COST_RISE_MIN_USD``;
- critical alerts not yet acknowledged or resolved.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from agentstream.schemas.usage_numbers import usage_cost

FAILURE_RISE_PTS = 5.0
MIN_RUNS = 20
COST_RISE_PCT = 25.0
COST_RISE_MIN_USD = 1.0


@dataclass(frozen=True)
class Period:
    since: str  # ISO 8601, as sent to the API
    until: str
    hours: float
    # The UTC days /v1/costs reads (its rollups are daily: a day is in when it overlaps the period).
    first_day: str = ""
    last_day: str = ""


def _n(v: Any) -> float:
    """A figure of an answer, 0 when absent or not a finite number >= 0."""
    return usage_cost(v) or 0.0


def _rate(failures: float, finished: float) -> float | None:
    return failures / finished if finished > 0 else None


def totals(stats: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    runs = finished = failures = cost = tokens = 0.0
    for s in stats:
        runs += _n(s.get("runs"))
        finished += _n(s.get("finished_runs"))
        failures += _n(s.get("failures"))
        cost += _n(s.get("cost_usd"))
        tokens += _n(s.get("total_tokens"))
    return {"runs": int(runs), "finished_runs": int(finished), "failures": int(failures),
            "failure_rate": _rate(failures, finished), "cost_usd": round(cost, 6), "total_tokens": int(tokens)}


def _pct(now: float, before: float) -> float | None:
    return None if before <= 0 else round((now / before - 1.0) * 100.0, 1)


def build(tenant: str, period: Period, now: Sequence[Mapping[str, Any]], before: Sequence[Mapping[str, Any]],
          alerts: Sequence[Mapping[str, Any]], alerts_complete: bool, drift: Sequence[Mapping[str, Any]],
          models: Sequence[Mapping[str, Any]], top: int = 10) -> dict[str, Any]:
    cur, prev = totals(now), totals(before)
    earlier = {(str(s.get("agent_id")), str(s.get("agent_version"))): s for s in before}
    versions, attention = [], []
    for s in sorted(now, key=lambda s: (-_n(s.get("cost_usd")), str(s.get("agent_id")), str(s.get("agent_version")))):
        key = (str(s.get("agent_id")), str(s.get("agent_version")))
        p = earlier.get(key)
        fin, fails, cost = _n(s.get("finished_runs")), _n(s.get("failures")), _n(s.get("cost_usd"))
        rate = _rate(fails, fin)
        row = {"agent_id": key[0], "agent_version": key[1], "runs": int(_n(s.get("runs"))), "finished_runs": int(fin),
               "failures": int(fails),
               "failure_rate": rate, "latency_p95_ms": s.get("latency_p95_ms"), "cost_usd": cost, "new": p is None,
               "failure_rate_before": None if p is None else _rate(_n(p.get("failures")), _n(p.get("finished_runs"))),
               "cost_change_pct": None if p is None else _pct(cost, _n(p.get("cost_usd")))}
        versions.append(row)
        attention += _version_attention(row, p, cur)
    for d in drift:
        on = [str(x) for x in d.get("drifted_on") or []]
        if d.get("drifted") and on:
            attention.append({"kind": "drift", "agent_id": str(d.get("agent_id")),
                              "agent_version": str(d.get("agent_version")),
                              "text": f"{_inline(d.get('agent_id'))} {_inline(d.get('agent_version'))} drifted "
                                      f"from its baseline on {', '.join(_inline(x) for x in on)}"})
    by_type: dict[str, dict[str, int]] = {}
    open_critical: list[Mapping[str, Any]] = []
    for a in alerts:
        t = by_type.setdefault(str(a.get("alert_type")), {"CRITICAL": 0, "WARNING": 0, "INFO": 0})
        sev = str(a.get("severity"))
        t[sev] = t.get(sev, 0) + 1
        if sev == "CRITICAL" and (a.get("state") or "open") == "open" and not a.get("silenced_by"):
            open_critical.append(a)
    if open_critical:
        kinds = sorted({_inline(a.get("alert_type")) for a in open_critical})
        attention.append({"kind": "alerts", "agent_id": "", "agent_version": "",
                          "text": f"{len(open_critical)} critical alert(s) still open ({', '.join(kinds)}); newest: "
                                  f"{_inline(open_critical[0].get('title'))}"})
    return {
        "tenant": tenant, "period": {"since": period.since, "until": period.until, "hours": period.hours},
        "models_days": [period.first_day, period.last_day],
        "totals": cur, "totals_before": prev,
        "changes": {"runs_pct": _pct(cur["runs"], prev["runs"]), "cost_pct": _pct(cur["cost_usd"], prev["cost_usd"])},
        "attention": attention, "versions": versions[:top], "versions_total": len(versions),
        "alerts": {"by_type": dict(sorted(by_type.items())), "total": len(alerts), "complete": alerts_complete},
        "models": _models(models, top),
    }


def _models(models: Sequence[Mapping[str, Any]], top: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"model": str((m.get("group") or {}).get("model", "")), "cost_usd": _n(m.get("cost_usd")),
         "calls": int(_n(m.get("calls"))), "total_tokens": int(_n(m.get("total_tokens")))} for m in models]
    return sorted(rows, key=lambda m: (-m["cost_usd"], m["model"]))[:top]


def _version_attention(row: dict[str, Any], before: Mapping[str, Any] | None,
                       fleet: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    name = f"{_inline(row['agent_id'])} {_inline(row['agent_version'])}"
    rate, fin = row["failure_rate"], row["finished_runs"]
    base = {"agent_id": row["agent_id"], "agent_version": row["agent_version"]}
    if before is not None and rate is not None and row["failure_rate_before"] is not None \
            and fin >= MIN_RUNS and _n(before.get("finished_runs")) >= MIN_RUNS \
            and (rate - row["failure_rate_before"]) * 100 > FAILURE_RISE_PTS:
        out.append({**base, "kind": "failures",
                    "text": f"{name}: failure rate {_p(rate)} ({_p(row['failure_rate_before'])} the period before)"})
    elif before is None and rate is not None and fin >= MIN_RUNS:
        others_fin = fleet["finished_runs"] - fin
        others = _rate(fleet["failures"] - row["failures"], others_fin) or 0.0
        if rate >= 2 * others and (rate - others) * 100 > FAILURE_RISE_PTS:
            out.append({**base, "kind": "failures",
                        "text": f"{name} is new and fails {_p(rate)} of its runs (the rest of the fleet {_p(others)})"})
    change = row["cost_change_pct"]
    if change is not None and change > COST_RISE_PCT and before is not None \
            and row["cost_usd"] - _n(before.get("cost_usd")) >= COST_RISE_MIN_USD:
        out.append({**base, "kind": "cost",
                    "text": f"{name}: spend {_usd(row['cost_usd'])}, {change:+.0f}% on the period before"})
    return out


def _p(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _usd(v: float) -> str:
    return f"${v:,.2f}" if v >= 1 else f"${v:.4f}"


def _change(pct: float | None) -> str:
    return "" if pct is None else f" ({pct:+.0f}%)"


def markdown(d: dict[str, Any]) -> str:
    t, b, p = d["totals"], d["totals_before"], d["period"]
    lines = [f"## agentstream digest: {d['tenant']}, {p['since']} to {p['until']} ({p['hours']:g} h)", "",
             f"- **{t['runs']:,} runs**{_change(d['changes']['runs_pct'])}, {_p(t['failure_rate'])} of the finished "
             f"ones failed ({_p(b['failure_rate'])} the period before)",
             f"- **{_usd(t['cost_usd'])} spent**{_change(d['changes']['cost_pct'])}, {t['total_tokens']:,} tokens"]
    alerts = d["alerts"]
    if alerts["total"]:
        kinds = ", ".join(f"{k} {sum(v.values())}" + (f" ({v['CRITICAL']} critical)" if v.get("CRITICAL") else "")
                          for k, v in alerts["by_type"].items())
        lines.append(f"- **{alerts['total']}{'' if alerts['complete'] else '+'} alerts**: {kinds}")
    else:
        lines.append("- no alerts")
    lines += ["", "### Needs attention", ""]
    lines += [f"- {a['text']}" for a in d["attention"]] or ["- nothing: no version failed or spent more than "
                                                              "before beyond the digest's rules, no drift, no open "
                                                              "critical alert"]
    if d["versions"]:
        lines += ["", f"### Versions by spend (top {len(d['versions'])} of {d['versions_total']})", "",
                  "| agent | version | runs | failed | before | p95 ms | spend | change |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for v in d["versions"]:
            p95, change = v["latency_p95_ms"], v["cost_change_pct"]
            lines.append(f"| {_cell(v['agent_id'])} | {_cell(v['agent_version'])} | {v['runs']:,} | "
                         f"{_p(v['failure_rate'])} | {'new' if v['new'] else _p(v['failure_rate_before'])} | "
                         f"{'-' if p95 is None else format(_n(p95), ',.0f')} | {_usd(v['cost_usd'])} | "
                         f"{'' if change is None else format(change, '+.0f') + '%'} |")
    if d["models"]:
        first, last = d["models_days"]
        days = f" (whole UTC days, {first} to {last})" if first and first != last else f" (UTC day {first})" if first else ""
        lines += ["", f"### Spend by model{days}", "", "| model | calls | tokens | spend |", "|---|---:|---:|---:|"]
        lines += [f"| {_cell(m['model']) or '(none)'} | {m['calls']:,} | {m['total_tokens']:,} | {_usd(m['cost_usd'])} |"
                  for m in d["models"]]
    return "\n".join(lines) + "\n"


def _inline(s: Any, limit: int = 200) -> str:
    """A stored name or title inside a line of the digest: one line (a line break in an agent's
    name must not start a line of its own in a chat post), at most ``limit`` characters."""
    text = " ".join(str(s).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _cell(s: str) -> str:
    """Stored names in a Markdown table: a pipe or a line break would end the cell or the row."""
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
