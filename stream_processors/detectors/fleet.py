"""Fleet-level detection, per tenant: spend windows (tenant per hour and day, agent per day) and
drift per agent (a new version against the old version's concurrent traffic).

Interface (stable): the chain pre-aggregates a per-batch delta (``new_delta``, ``add_spend``,
``add_active``, ``drift_sample`` + ``drift.add_run``/``drift.add_step``), so ``apply(state,
delta, budgets)`` runs a handful of times per batch, not per event. ``state`` is a JSON-able dict
kept per tenant in a changelog table; ``raised`` remembers every alert already sent (pruned with
its window), so a restart repeats none.

Spend: a limit is the amount allowed; ``budget_breach`` once spend > limit (compared in decimal:
see ``schemas/usage_numbers.exceeds_usd``), ``budget_warning`` once spend >= ``warn_fraction`` x limit (0 = off);
each level once per window. With ``hard_limit`` the breach stops the tenant's live runs (the
agent's, for ``agent_usd_per_day``), and every run that becomes active later in the same window
gets a STOP citing the same alert (commands only: no second alert).

Drift: when an agent's version not seen before appears, a comparison opens between it and the
version before it. The baseline is the old version's traffic in the hours the new one has
traffic (concurrent, so time of day does not confound); when the old version has less than half
the new one's runs concurrently (a hard cut-over), its last ``PRE_HOURS`` hours before the
rollout are added. Each
batch re-tests every metric with an always-valid p-value (``drift.py``); an alert per metric per
rollout, when p <= alpha's share and the effect is material.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, cast

from agentstream.schemas.usage_numbers import counted_cost

from . import drift
from .run_budgets import apart, levels, warn_fraction
from .runs import EMPTY

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
PRE_HOURS = 3


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
    alert: bool = True  # False: STOP commands citing the alert ``key`` raised earlier


def new_delta(tenant: str) -> dict[str, Any]:
    return {"tenant": tenant, "spend": {}, "active": {}, "ended": [], "drift": {}, "ts_us": 0}


def add_spend(d: dict[str, Any], agent: str, ts_us: int, usd: float) -> None:
    k = f"{agent}|{ts_us // HOUR_US}"
    d["spend"][k] = d["spend"].get(k, 0.0) + usd
    d["ts_us"] = max(d["ts_us"], ts_us)


def add_active(d: dict[str, Any], run_id: str, agent: str, ts_us: int) -> None:
    d["active"][run_id] = agent
    d["ts_us"] = max(d["ts_us"], ts_us)


def drift_sample(d: dict[str, Any], agent: str, version: str, ts_us: int) -> dict[str, Any]:
    key = f"{agent}|{version}|{ts_us // HOUR_US}"
    s = d["drift"].get(key)
    if s is None:
        s = d["drift"][key] = drift.new_sample()
    d["ts_us"] = max(d["ts_us"], ts_us)
    return cast(dict[str, Any], s)


FLEET_KINDS = frozenset(("STEP", "RUN_START", "RUN_END"))


class DeltaBuilder:
    """One tenant's delta over one batch, event by event (``Chain.detect``'s fleet half).

    The same delta as ``new_delta`` + ``add_*`` + ``drift_sample`` give, key for key and in the
    same order, built with per-batch memos instead of per-event work: a drift sample and a spend
    key are found by (agent, version, hour) rather than by formatting their string key, the
    ended runs are a set beside the delta's list, sources are keyed by (topic, partition)."""

    __slots__ = ("d", "ts", "_src", "_ended", "_samples", "_spend_keys")

    def __init__(self, tenant: str) -> None:
        self.d = new_delta(tenant)
        self.d["src"] = {}
        self.ts = self.d["ts_us"]
        self._src: dict[tuple[str, int], int] = {}
        self._ended: set[str] = set()
        self._samples: dict[tuple[str, str, int], dict[str, Any]] = {}
        self._spend_keys: dict[tuple[str, int], str] = {}

    def add(self, e: Mapping[str, Any], topic: str, partition: int, offset: int, waited_us: int = 0) -> None:
        """Count one event of kind in ``FLEET_KINDS`` (others are the caller's to skip);
        ``waited_us``: at a RUN_END, the run's approval waits (runs.Limits' wall time leaves
        them out too), which are a human's time, not the version's: a version whose approvers
        are slower is not a latency regression."""
        d = self.d
        self._src[(topic, partition)] = offset
        kind = e["kind"]
        p = e.get("payload") or EMPTY
        ts, agent, run_id = e["ts_us"], e["agent_id"], e["run_id"]
        if ts > self.ts:
            self.ts = ts
        if kind == "RUN_START":
            d["active"][run_id] = agent
            # A root is registered too: its agent is the first of every chain below it.
            d.setdefault("links", []).append([run_id, e.get("parent_run_id"), agent, "", ts])
        elif kind == "RUN_END":
            d["ended"].append(run_id)
            self._ended.add(run_id)
            d["active"].pop(run_id, None)
            drift.add_run(self._sample(agent, e["agent_version"], ts), p.get("status") != "SUCCESS",
                          max(0.0, float(p.get("duration_ms") or 0.0) - waited_us / 1000),
                          counted_cost(p.get("cost_usd")),
                          int(p.get("step_count") or 0))
        else:
            handoff = p.get("handoff")
            if handoff and handoff.get("to_run_id"):
                d.setdefault("links", []).append([handoff["to_run_id"], run_id, handoff.get("to_agent_id") or "",
                                                  agent, ts])
            llm = p.get("llm")
            hour = ts // HOUR_US
            # a NaN cost made the tenant's day total NaN, which no budget is below (usage_numbers.py)
            if llm and (cost := counted_cost(llm.get("cost_usd"))):
                k = self._spend_keys.get((agent, hour))
                if k is None:
                    k = self._spend_keys[(agent, hour)] = f"{agent}|{hour}"
                spend = d["spend"]
                spend[k] = spend.get(k, 0.0) + cost
            version = e["agent_version"]
            # ``_sample``'s lookup inline: most steps of a batch find their hour's sample
            sample = self._samples.get((agent, version, hour)) or self._sample(agent, version, ts)
            drift.add_step(sample, p.get("name") or "step", float(p.get("latency_ms") or 0.0))
            if run_id not in self._ended:
                d["active"][run_id] = agent

    def _sample(self, agent: str, version: str, ts_us: int) -> dict[str, Any]:
        hour = ts_us // HOUR_US
        s = self._samples.get((agent, version, hour))
        if s is None:
            # Two (agent, version) pairs may format to one key ("a|b", "c" and "a", "b|c"): they
            # share its sample, as drift_sample has them do.
            s = self._samples[(agent, version, hour)] = drift_sample(self.d, agent, version, ts_us)
        return s

    def finish(self) -> dict[str, Any]:
        d = self.d
        d["ts_us"] = self.ts
        src = d["src"]
        for (topic, partition), offset in self._src.items():
            src[f"{topic}|{partition}"] = offset
        return d


def new_state() -> dict[str, Any]:
    return {"v": 2, "spend": {}, "raised": {}, "active": {}, "stopped": {}, "agents": {}}


def _upgrade(state: dict[str, Any]) -> None:
    if state.get("v") != 2:
        old_raised = state.get("raised")
        state.clear()
        state.update(new_state())
        # Keys of the list form carried no window end: they are dropped (at worst a window
        # open across the upgrade warns once more).
        state["raised"] = dict(old_raised) if isinstance(old_raised, dict) else {}


def apply(state: dict[str, Any], delta: Mapping[str, Any], budgets: Mapping[str, Any],
          cfg: drift.DriftConfig = drift.DriftConfig()) -> list[FleetFinding]:
    _upgrade(state)
    out: list[FleetFinding] = []
    now = delta["ts_us"]
    active = delta["active"]
    if isinstance(active, list):  # a delta written before run agents were carried
        active = {r: "" for r in active}
    for run, agent in active.items():
        state["active"][run] = [now, agent]
    for run in delta["ended"]:
        state["active"].pop(run, None)
        state["stopped"].pop(run, None)  # ended: its STOP is settled, nothing to repeat
    # Runs that went quiet for a day are not live any more; keeps the set bounded.
    state["active"] = {r: v for r, v in state["active"].items() if now - v[0] < DAY_US}
    spend = state["spend"]
    for key, usd in delta["spend"].items():
        agent, hour = key.rsplit("|", 1)
        day = int(hour) * HOUR_US // DAY_US
        for k in (f"t|h|{hour}", f"t|d|{day}", f"a|{agent}|d|{day}"):
            spend[k] = spend.get(k, 0.0) + usd
    # Windows end by count, not by the newest event time: the latest KEEP_HOURS hour windows and
    # KEEP_DAYS day windows that have spend (late events land in a window still kept). One host
    # whose clock runs hours ahead (the processors take events up to a day ahead) made the newest
    # time jump, and pruning by it dropped the current hour's spend: a $10/h budget was never
    # breached at $16. A skewed host now costs one window slot. Alert keys go with their windows.
    hours = set(sorted({_window_index(k) for k in spend if "|h|" in k})[-KEEP_HOURS:])
    days = set(sorted({_window_index(k) for k in spend if "|h|" not in k})[-KEEP_DAYS:])
    state["spend"] = kept = {k: v for k, v in spend.items() if _window_index(k) in (hours if "|h|" in k else days)}
    state["raised"] = {k: v for k, v in state["raised"].items() if k.split("|", 1)[1] in kept}
    oldest = min(hours) if hours else now // HOUR_US
    state["stopped"] = {k: v for k, v in state["stopped"].items() if v >= oldest}
    _budgets(state, active, budgets, now, out)
    _drift(state, delta, cfg, out)
    return out


KEEP_HOURS = 6  # hour windows with spend kept per tenant (the current one, late ones, a skewed host's)
KEEP_DAYS = 4


def _window_index(k: str) -> int:
    return int(k.rsplit("|", 1)[1])


def _window_hour(k: str) -> int:
    """The last hour window ``k``'s spend is kept (see ``apply``): its raised keys live as long,
    so a late event for a window already alerted cannot raise it again."""
    i = _window_index(k)
    return i + 2 if "|h|" in k else (i + 3) * 24 - 1


def _budgets(state: dict[str, Any], new_active: Mapping[str, str], budgets: Mapping[str, Any], now: int,
             out: list[FleetFinding]) -> None:
    hard = bool(budgets.get("hard_limit"))
    warn_at = warn_fraction(budgets)
    for k, used in sorted(state["spend"].items()):
        parts = k.split("|")
        if parts[0] == "t":
            limit_name = "tenant_usd_per_hour" if parts[1] == "h" else "tenant_usd_per_day"
            agent = None
        else:
            limit_name, agent = "agent_usd_per_day", parts[1]
        limit = budgets.get(limit_name)
        if not limit:
            continue
        limit = float(limit)
        u, lim_s = apart(used, limit, decimals=True, digits=4)
        ev = {"limit_name": limit_name, "window": k, "used_usd": u, "limit_usd": lim_s, "event_us": str(now)}
        hour = _window_hour(k)
        for level in levels(used, limit, warn_at, usd=True):
            key = f"{level}|{k}"
            if key in state["raised"]:
                continue
            state["raised"][key] = hour
            if level == "budget_warning":
                out.append(FleetFinding(level, "WARNING", f"{limit_name} at {used / limit:.0%}", ev, key=key,
                                        agent_id=agent))
                continue
            runs = _stoppable(state, agent, k, hour) if hard else []
            out.append(FleetFinding(level, "CRITICAL", f"{limit_name} exceeded ({u} > {lim_s} USD)",
                                    ev, key=key, agent_id=agent, stop_runs=runs))
        if hard and f"budget_breach|{k}" in state["raised"]:
            # Runs that become active after the breach, in the same window, are stopped too.
            late = [r for r, a in new_active.items() if (agent is None or a == agent)
                    and r not in state["stopped"] and r in state["active"]]
            for r in late:
                state["stopped"][r] = hour
            if late:
                out.append(FleetFinding("budget_breach", "CRITICAL", f"{limit_name} exceeded: run stopped", ev,
                                        key=f"budget_breach|{k}", agent_id=agent, stop_runs=late, alert=False))


def _stoppable(state: dict[str, Any], agent: str | None, window: str, hour: int) -> list[str]:
    runs = sorted(r for r, (_, a) in state["active"].items()
                  if (agent is None or a == agent) and r not in state["stopped"])
    for r in runs:
        state["stopped"][r] = hour
    return runs


# ---- drift -------------------------------------------------------------------------------

def _agent(state: dict[str, Any], agent: str) -> dict[str, Any]:
    a = state["agents"].get(agent)
    if a is None or "order" not in a:
        a = state["agents"][agent] = {"order": [], "buf": {}, "cmp": None}
    return cast(dict[str, Any], a)


def _drift(state: dict[str, Any], delta: Mapping[str, Any], cfg: drift.DriftConfig, out: list[FleetFinding]) -> None:
    touched: set[str] = set()
    for key in sorted(delta["drift"], key=lambda k: int(k.rsplit("|", 1)[1])):
        sample = delta["drift"][key]
        agent, version, hour_s = key.rsplit("|", 2)
        hour = int(hour_s)
        a = _agent(state, agent)
        if version not in a["order"]:
            a["order"].append(version)
            del a["order"][:-3]
            if len(a["order"]) >= 2:
                old = a["order"][-2]
                pre = drift.new_sample()
                for h, s in (a["buf"].get(old) or {}).items():
                    if int(h) < hour:
                        drift.merge(pre, s)
                a["cmp"] = {"old": old, "new": version, "start_us": delta["ts_us"], "hours": [],
                            "old_s": drift.new_sample(), "new_s": drift.new_sample(), "pre": pre, "alarmed": []}
        c = a["cmp"]
        if c is not None and version == c["new"]:
            drift.merge(c["new_s"], sample)
            if hour not in c["hours"]:
                c["hours"].append(hour)
                seen = (a["buf"].get(c["old"]) or {}).get(str(hour))
                if seen:
                    drift.merge(c["old_s"], seen)
        elif c is not None and version == c["old"] and hour in c["hours"]:
            drift.merge(c["old_s"], sample)
        buf = a["buf"].setdefault(version, {})
        drift.merge(buf.setdefault(str(hour), drift.new_sample()), sample)
        # Bounded: the last PRE_HOURS + 1 hours of the two newest versions.
        a["buf"] = {v: {h: s for h, s in b.items() if int(h) >= hour - PRE_HOURS}
                    for v, b in a["buf"].items() if v in a["order"][-2:]}
        touched.add(agent)
    for agent in sorted(touched):
        c = state["agents"][agent]["cmp"]
        if c is None:
            continue
        # Concurrent old traffic is the baseline. After a hard cut-over it stops growing (only
        # the rollout hour's head has any): then the old version's hours just before the
        # rollout are added, adjacent hours, so the time of day still barely differs.
        concurrent = c["old_s"]["n"] >= max(cfg.min_n, c["new_s"]["n"] // 2) or c["pre"]["n"] == 0
        base = c["old_s"] if concurrent else drift.merge(drift.merge(drift.new_sample(), c["old_s"]), c["pre"])
        result = drift.compare(base, c["new_s"], cfg)
        names = len(base.get("step_lat") or {})
        for metric, r in result.items():
            alpha = drift.metric_alpha(metric, names, cfg)
            if metric in c["alarmed"] or r["p_value"] > alpha or not r["material"]:
                continue
            c["alarmed"].append(metric)
            ev = {"metric": metric, "comparison": "version", "old_version": c["old"],
                  "baseline": "concurrent" if concurrent else "concurrent+pre_rollout",
                  "effect_size": f"{r['effect']:.4g}", "p_value": f"{r['p_value']:.3g}", "alpha": f"{alpha:.3g}",
                  "baseline_n": str(base["n"]), "current_n": str(c["new_s"]["n"]),
                  "rollout_us": str(c["start_us"]), "event_us": str(delta["ts_us"])}
            ev.update({k: f"{v:.4g}" for k, v in r.items() if k not in ("effect", "p_value", "material")})
            key = f"drift|{agent}|{c['old']}->{c['new']}|{metric}"
            out.append(FleetFinding("drift", "WARNING", f"{agent} {c['new']}: {metric} drifted vs {c['old']}",
                                    ev, key=key, agent_id=agent, agent_version=c["new"]))
