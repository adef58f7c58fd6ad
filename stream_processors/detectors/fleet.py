"""Fleet-level detection, per tenant: spend windows (tenant per hour and day, agent per day) and
drift per agent (new version vs previous version; current hour vs the trailing 24 h).

Input is a per-batch delta pre-aggregated by the chain (``new_delta``/``add_*``), so this runs a
handful of times per batch, not per event. State is a plain dict kept per tenant in a changelog
table; ``raised`` remembers every alert already sent, so a restart does not repeat one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import drift

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
MAX_RAISED = 2000


@dataclass
class FleetFinding:
    alert_type: str
    severity: str
    title: str
    evidence: dict[str, str]
    key: str
    agent_id: str | None = None
    agent_version: str | None = None
    stop_runs: list[str] = field(default_factory=list)


def new_delta(tenant: str) -> dict[str, Any]:
    return {"tenant": tenant, "spend": {}, "active": [], "ended": [], "drift": {}, "ts_us": 0}


def add_spend(d: dict[str, Any], agent: str, ts_us: int, usd: float) -> None:
    k = f"{agent}|{ts_us // HOUR_US}"
    d["spend"][k] = d["spend"].get(k, 0.0) + usd
    d["ts_us"] = max(d["ts_us"], ts_us)


def drift_sample(d: dict[str, Any], agent: str, version: str, ts_us: int) -> dict[str, Any]:
    key = f"{agent}|{version}|{ts_us // HOUR_US}"
    s = d["drift"].get(key)
    if s is None:
        s = d["drift"][key] = drift.new_sample()
    d["ts_us"] = max(d["ts_us"], ts_us)
    return s


def new_state() -> dict[str, Any]:
    return {"spend": {}, "raised": [], "active": {}, "agents": {}}


def _raise(state: dict[str, Any], out: list[FleetFinding], f: FleetFinding) -> None:
    if f.key in state["raised"]:
        return
    state["raised"].append(f.key)
    del state["raised"][:-MAX_RAISED]
    out.append(f)


def apply(state: dict[str, Any], delta: Mapping[str, Any], budgets: Mapping[str, Any],
          cfg: drift.DriftConfig = drift.DriftConfig()) -> list[FleetFinding]:
    out: list[FleetFinding] = []
    now = delta["ts_us"]
    for run in delta["active"]:
        state["active"][run] = now
    for run in delta["ended"]:
        state["active"].pop(run, None)
    # Runs that went quiet for a day are not live any more; keeps the set bounded.
    state["active"] = {r: t for r, t in state["active"].items() if now - t < DAY_US}
    spend = state["spend"]
    for key, usd in delta["spend"].items():
        agent, hour = key.split("|")
        day = int(hour) * HOUR_US // DAY_US
        for k in (f"t|h|{hour}", f"t|d|{day}", f"a|{agent}|d|{day}"):
            spend[k] = spend.get(k, 0.0) + usd
    cur_hour, cur_day = now // HOUR_US, now // DAY_US
    state["spend"] = {k: v for k, v in spend.items()
                      if int(k.rsplit("|", 1)[1]) >= (cur_hour - 2 if "|h|" in k else cur_day - 2)}
    _budgets(state, delta, budgets, out)
    _drift(state, delta, cfg, out)
    return out


def _budgets(state: dict[str, Any], delta: Mapping[str, Any], budgets: Mapping[str, Any],
             out: list[FleetFinding]) -> None:
    hard = bool(budgets.get("hard_limit"))
    checks = []
    for k, used in state["spend"].items():
        parts = k.split("|")
        if parts[0] == "t" and parts[1] == "h" and budgets.get("tenant_usd_per_hour"):
            checks.append(("tenant_usd_per_hour", k, used, budgets["tenant_usd_per_hour"], None))
        elif parts[0] == "t" and parts[1] == "d" and budgets.get("tenant_usd_per_day"):
            checks.append(("tenant_usd_per_day", k, used, budgets["tenant_usd_per_day"], None))
        elif parts[0] == "a" and budgets.get("agent_usd_per_day"):
            checks.append(("agent_usd_per_day", k, used, budgets["agent_usd_per_day"], parts[1]))
    for limit_name, window, used, limit, agent in checks:
        ratio = used / float(limit)
        ev = {"limit_name": limit_name, "window": window, "used_usd": f"{used:.4f}", "limit_usd": f"{float(limit):.4f}"}
        if ratio >= 1.0:
            if f"breach|{window}" not in state["raised"]:
                runs = sorted(state["active"]) if hard else []
                _raise(state, out, FleetFinding("budget_breach", "CRITICAL", f"{limit_name} exceeded ({ratio:.0%})",
                                                ev, key=f"breach|{window}", agent_id=agent, stop_runs=runs))
                state["raised"].extend(f"breach|{window}|{run}" for run in runs)
            elif hard:
                # Runs that start after the breach, in the same window, are stopped too (once each).
                for run in delta["active"]:
                    _raise(state, out, FleetFinding("budget_breach", "CRITICAL", f"{limit_name} exceeded: run stopped",
                                                    {**ev, "run_id": run}, key=f"breach|{window}|{run}",
                                                    agent_id=agent, stop_runs=[run]))
        elif ratio >= 0.8:
            _raise(state, out, FleetFinding("budget_warning", "WARNING", f"{limit_name} at {ratio:.0%}", ev,
                                            key=f"warn|{window}", agent_id=agent))


def _drift(state: dict[str, Any], delta: Mapping[str, Any], cfg: drift.DriftConfig, out: list[FleetFinding]) -> None:
    touched: set[str] = set()
    for key, sample in delta["drift"].items():
        agent, version, hour = key.split("|")
        a = state["agents"].setdefault(agent, {"versions": [], "samples": {}, "hours": {}, "drifting": {},
                                               "checked": {}})
        if version not in a["versions"]:
            a["versions"].append(version)
            del a["versions"][:-3]
        drift.merge(a["samples"].setdefault(version, drift.new_sample()), sample)
        drift.merge(a["hours"].setdefault(hour, drift.new_sample()), sample)
        touched.add(agent)
    for agent in touched:
        a = state["agents"][agent]
        a["samples"] = {v: s for v, s in a["samples"].items() if v in a["versions"]}
        hours = sorted(a["hours"], key=int)[-25:]
        a["hours"] = {h: a["hours"][h] for h in hours}
        comparisons = []
        if len(a["versions"]) >= 2:
            prev, cur = a["versions"][-2], a["versions"][-1]
            comparisons.append((f"version|{prev}->{cur}", a["samples"][prev], a["samples"][cur], cur, prev))
        if len(hours) >= 2:
            base = drift.new_sample()
            for h in hours[:-1]:
                drift.merge(base, a["hours"][h])
            comparisons.append((f"window|{hours[-1]}", base, a["hours"][hours[-1]], None, "trailing 24h"))
        for ckey, base, cur, version, baseline in comparisons:
            # Re-test only when the sample grew by 10 %: repeated looks at a growing sample would
            # otherwise inflate the false-alarm rate of two identical versions.
            last = a["checked"].get(ckey, 0)
            if cur["n"] < max(last * 1.1, last + 50):
                continue
            a["checked"][ckey] = cur["n"]
            result = drift.compare(base, cur, cfg)
            flags = a["drifting"].setdefault(ckey, {})
            for metric in drift.transitions(result, flags, cfg):
                r = result[metric]
                ev = {"metric": metric, "comparison": ckey.split("|")[0], "baseline": baseline,
                      "effect_size": f"{r['effect']:.4g}", "p_value": f"{r['p_value']:.3g}",
                      "baseline_n": str(base["n"]), "current_n": str(cur["n"])}
                ev.update({k: f"{v:.4g}" for k, v in r.items() if k not in ("effect", "p_value", "material")})
                n_entered = sum(1 for k in state["raised"] if k.startswith(f"drift|{agent}|{ckey}|{metric}|"))
                _raise(state, out, FleetFinding("drift", "WARNING", f"{agent}: {metric} drifted ({ckey.split('|')[0]})",
                                                ev, key=f"drift|{agent}|{ckey}|{metric}|{n_entered}",
                                                agent_id=agent, agent_version=version))
