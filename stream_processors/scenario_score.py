"""Scores what the detectors said about a generated fleet (``scenarios.py``) against its truth,
and replays a fleet in process through the same batch core the workers run (``Chain``).

``score(fleet, alerts, commands)`` takes decoded Alert and Command records (from the topics, or
from ``replay_in_process``) and reports, per detector: recall, precision, duplicate alerts, the
delay from the step that first exceeded the threshold (in steps and in event time), tenant-day
warn/breach counts, STOP precision, drift episodes found with their delay after the rollout, and
alarms on null-control rollouts.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable

from agentstream.schemas import ALERT, COMMAND, EVENT, Codec, topic_name

from .scenarios import HOUR_US, Fleet

IDLE_S = 1800.0  # run-state idle time in the in-process replay
DRIFT_METRIC = {"failure_rate": "failure_rate", "cost_per_run": "cost_per_run",
                "step_latency": "step_latency_p95:kb_search"}


def _rate(num: int, den: int) -> float:
    return round(num / den, 4) if den else 1.0


def _run_detector(fleet: Fleet, alerts: list[dict[str, Any]], prefix: str, alert_type: str) -> dict[str, Any]:
    planted = {r for r, t in fleet.runs.items() if t.kind.startswith(prefix)}
    per_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alerts:
        if a["alert_type"] == alert_type and a.get("run_id"):
            per_run[a["run_id"]].append(a)
    found = planted & set(per_run)
    dup_keys = Counter((a["run_id"], a["evidence"].get("metric", "")) for lst in per_run.values() for a in lst)
    delays, delays_s = [], []
    for r in found:
        t = fleet.runs[r]
        first = min(per_run[r], key=lambda a: int(a["evidence"].get("step_seq") or 0))
        if t.expect_seq is not None and t.expect_us is not None and first["evidence"].get("step_seq"):
            delays.append(int(first["evidence"]["step_seq"]) - t.expect_seq)
            delays_s.append((int(first["evidence"]["event_us"]) - t.expect_us) / 1e6)
    false_runs = sorted(set(per_run) - planted)
    by_kind = Counter(fleet.runs[r].kind for r in false_runs if r in fleet.runs)
    missed = Counter(fleet.runs[r].kind for r in planted - found)
    return {"planted": len(planted), "found": len(found), "recall": _rate(len(found), len(planted)),
            "precision": _rate(len(found), len(per_run)), "false_runs": len(false_runs),
            "false_by_kind": dict(by_kind), "missed_by_kind": dict(missed),
            "duplicates": sum(n - 1 for n in dup_keys.values()),
            "delay_steps_max": max(delays, default=0), "delay_steps_min": min(delays, default=0),
            "within_1_step": _rate(sum(1 for d in delays if abs(d) <= 1), len(delays)),
            "delay_s_max": round(max(delays_s, default=0.0), 3)}


def _tenant_day(fleet: Fleet, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    spend: Counter[str] = Counter()
    for e in fleet.events:
        llm = e["payload"].get("llm") if e["kind"] == "STEP" else None
        if llm:
            spend[f"{e['tenant_id']}|{e['ts_us'] // (24 * HOUR_US)}"] += llm["cost_usd"]
    seen = Counter((a["tenant_id"], a["evidence"].get("window", ""), a["alert_type"]) for a in alerts
                   if a["alert_type"] in ("budget_warning", "budget_breach")
                   and a["evidence"].get("limit_name") == "tenant_usd_per_day")
    ok, rows = True, []
    for key, used in sorted(spend.items()):
        tenant, day = key.split("|")
        limit = fleet.tenant_day_limit[tenant]
        want = {"budget_warning": int(used >= 0.8 * limit), "budget_breach": int(used > limit)}
        got = {lvl: seen[(tenant, f"t|d|{day}", lvl)] for lvl in want}
        ok = ok and want == got
        rows.append({"tenant": tenant, "day": int(day), "used": round(used, 4), "limit": limit, "want": want,
                     "got": got})
    return {"exactly_once": ok, "windows": rows}


def _drift(fleet: Fleet, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    drift = [a for a in alerts if a["alert_type"] == "drift"]
    dups = sum(n - 1 for n in Counter((a["agent_id"], a["evidence"]["metric"]) for a in drift).values())
    episodes, null_alarms, other = [], 0, 0
    for ro in fleet.rollouts:
        mine = [a for a in drift if a["agent_id"] == ro["agent"]]
        if ro["kind"] == "null":
            null_alarms += len(mine)
            continue
        want = DRIFT_METRIC[ro["kind"]]
        hit = [a for a in mine if a["evidence"]["metric"] == want]
        other += len(mine) - len(hit)
        delay = min(((int(a["evidence"]["event_us"]) - ro["rollout_us"]) / HOUR_US for a in hit), default=None)
        episodes.append({"agent": ro["agent"], "kind": ro["kind"], "found": bool(hit),
                         "delay_h": None if delay is None else round(delay, 2)})
    delays = [e["delay_h"] for e in episodes if e["delay_h"] is not None]
    return {"episodes": episodes, "found": sum(e["found"] for e in episodes), "planted": len(episodes),
            "delay_h_max": max(delays, default=None), "null_controls": sum(r["kind"] == "null" for r in fleet.rollouts),
            "null_false_alarms": null_alarms, "other_metric_alarms": other, "duplicates": dups}


def _stops(fleet: Fleet, alerts: list[dict[str, Any]], commands: list[dict[str, Any]],
           tenant_day: dict[str, Any]) -> dict[str, Any]:
    by_id = {a["alert_id"]: a for a in alerts}
    breached = {(w["tenant"], f"t|d|{w['day']}") for w in tenant_day["windows"] if w["want"]["budget_breach"]}
    good = 0
    stops = [c for c in commands if c["command_type"] == "STOP"]
    for c in stops:
        a = by_id.get(c.get("alert_id") or "")
        truth = fleet.runs.get(c["run_id"])
        if a is None or truth is None:
            continue
        if a["alert_type"] == "loop" and truth.kind.startswith("loop:"):
            good += 1
        elif a["alert_type"] == "budget_breach" and a.get("run_id") and truth.kind.startswith("budget:"):
            good += 1
        elif a["alert_type"] == "budget_breach" and (a["tenant_id"], a["evidence"].get("window")) in breached:
            good += 1
    per_run = Counter((c["run_id"], c.get("alert_id")) for c in stops)
    return {"stops": len(stops), "stop_precision": _rate(good, len(stops)),
            "stop_duplicates": sum(n - 1 for n in per_run.values())}


def score(fleet: Fleet, alerts: list[dict[str, Any]], commands: list[dict[str, Any]]) -> dict[str, Any]:
    loops = _run_detector(fleet, alerts, "loop:", "loop")
    budgets = _run_detector(fleet, alerts, "budget:", "budget_breach")
    day = _tenant_day(fleet, alerts)
    drift = _drift(fleet, alerts)
    stops = _stops(fleet, alerts, commands, day)
    warn_dups = sum(n - 1 for n in Counter((a.get("run_id"), a["evidence"].get("metric"), a["evidence"].get("window"))
                                          for a in alerts if a["alert_type"] == "budget_warning").values())
    return {"runs": len(fleet.runs), "events": len(fleet.events), "loops": loops, "budgets": budgets,
            "tenant_day": day, "drift": drift, **stops,
            "duplicates": loops["duplicates"] + budgets["duplicates"] + drift["duplicates"] + warn_dups}


def summary(s: dict[str, Any]) -> dict[str, Any]:
    """The figures ``bench/detection.py`` prints last."""
    return {"runs": s["runs"], "events": s["events"],
            "loop_recall": s["loops"]["recall"], "loop_precision": s["loops"]["precision"],
            "loop_within_1_step": s["loops"]["within_1_step"],
            "budget_recall": s["budgets"]["recall"], "budget_precision": s["budgets"]["precision"],
            "budget_within_1_step": s["budgets"]["within_1_step"],
            "duplicates": s["duplicates"], "stop_precision": s["stop_precision"],
            "tenant_day_exactly_once": s["tenant_day"]["exactly_once"],
            "drift_found": f"{s['drift']['found']}/{s['drift']['planted']}",
            "drift_delay_h_max": s["drift"]["delay_h_max"], "null_false_alarms": s["drift"]["null_false_alarms"]}


def replay_in_process(fleet: Fleet, batch: int = 2000, redaction: bool = False
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every event through the per-run detectors of ``Chain.detect`` (with ``redaction``: the
    whole ``Chain.process``, encoding each event first) and every fleet delta through
    ``Chain.process_fleet``, in event-time order, with dict-backed state: the code the workers
    run, without Kafka. Runs idle for ``IDLE_S`` are compacted (detectors/run_eviction.py): the
    fleet's approval waits outlast it, so the scores cover runs resuming from their totals (the
    real worker, on its default of an hour, compacts the longer waits)."""
    from .chain import Chain
    from .policies import PolicyBook, TenantPolicy
    from .records import InRecord, Redacted
    from .redaction.engine import Redactor
    from .settings import ProcessorsSettings

    codec = Codec()
    settings = ProcessorsSettings(topic_prefix="replay.", run_state_idle_s=IDLE_S)
    book = PolicyBook()
    for tenant, pol in fleet.policies.items():
        book.set(TenantPolicy(tenant, loops=pol["loops"], budgets=pol["budgets"]))
    chain = Chain(settings, codec, Redactor(b"replay"), book, "replay.fleet")
    run_state: dict[bytes, bytes] = {}
    fleet_state: dict[bytes, bytes] = {}
    get_run, put_run = (lambda p, k: run_state.get(k)), (lambda p, k, v: _put(run_state, k, v))
    alerts_t, commands_t = topic_name("alerts", "replay."), topic_name("commands", "replay.")
    out_alerts, out_commands = [], []
    for i in range(0, len(fleet.events), batch):
        events = fleet.events[i:i + batch]
        if redaction:
            out = chain.process([InRecord("replay.raw", 0, i + j, e["run_id"].encode(), codec.encode(EVENT, e))
                                 for j, e in enumerate(events)], get_run, put_run)
        else:
            out = chain.detect([Redacted(e, InRecord("replay.raw", 0, i + j, None, None))
                                for j, e in enumerate(events)], get_run, put_run)
        fleet_in = [InRecord(o.topic, 0, i + n, o.key, o.value) for n, o in enumerate(out)
                    if o.topic == "replay.fleet"]
        out += chain.process_fleet(fleet_in, lambda p, k: fleet_state.get(k),
                                   lambda p, k, v: _put(fleet_state, k, v))
        for o in out:
            if o.topic == alerts_t:
                out_alerts.append(codec.decode_as(ALERT, o.value))
            elif o.topic == commands_t:
                out_commands.append(codec.decode_as(COMMAND, o.value))
    return out_alerts, out_commands


def _put(d: dict[bytes, bytes], k: bytes, v: bytes | None) -> None:
    if v is None:
        d.pop(k, None)
    else:
        d[k] = v


def decoded(values: Iterable[bytes], name: str) -> list[dict[str, Any]]:
    codec = Codec()
    return [codec.decode_as(ALERT if name == "alerts" else COMMAND, v) for v in values]
