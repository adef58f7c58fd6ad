"""Reading and writing the compacted ``policies`` topic (``agentstream policy set``).

The API and the CLI write policies at once, and on the embedded broker a fetch can then skip a
batch (schemas/offset_gaps.py): ``read_policies`` reads through an ``OffsetGapGuard``, which seeks
a partition back over a jump and reads it again."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Iterable

from agentstream.schemas import PARTITIONER, POLICY, Codec, make_resolver, topic_name
from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, start_positions

from .policies import (BUDGET_DEFAULTS, GOVERNANCE_DEFAULTS, LOOP_DEFAULTS, TenantPolicy, governance_of,
                       validate_actions)
from .policy_follower import PolicyCopy
from .settings import ProcessorsSettings

log = logging.getLogger(__name__)


def _parse_value(raw: str, default: Any) -> Any:
    low = raw.strip().lower()
    if low in ("none", "null", ""):
        return None
    if isinstance(default, bool) or low in ("true", "false"):
        if low not in ("true", "false"):
            raise ValueError(f"expected true/false, got {raw!r}")
        return low == "true"
    if isinstance(default, int) and not isinstance(default, bool):
        return int(raw)
    return float(raw)


def _pairs(items: Iterable[str], defaults: dict[str, Any], what: str) -> dict[str, Any]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{what}: expected name=value, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k not in defaults:
            raise ValueError(f"{what}: unknown setting {k!r}; one of {', '.join(defaults)}")
        out[k] = _parse_value(v, defaults[k])
        if k.endswith(("_steps", "_tokens")) and out[k] is not None:
            out[k] = int(out[k])
    return out


def _check_ranges(loops: dict[str, Any], budgets: dict[str, Any]) -> None:
    if loops.get("repeat_window") is not None and loops["repeat_window"] < 0:
        raise ValueError("--loop: repeat_window must be >= 0 (0 = the whole run)")
    wf = budgets.get("warn_fraction")
    if wf is not None and not 0 <= wf <= 1:
        raise ValueError("--budget: warn_fraction must be within 0..1 (0 = no warnings)")


def governance_pairs(items: Iterable[str]) -> dict[str, Any]:
    """``--govern name=value`` items: lists are comma separated (``tool_deny=shell,fs_*``),
    ``max_calls_per_tool`` is ``tool:count,...``; an empty value clears a list or limit."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--govern: expected name=value, got {item!r}")
        k, v = (x.strip() for x in item.split("=", 1))
        if k not in GOVERNANCE_DEFAULTS:
            raise ValueError(f"--govern: unknown setting {k!r}; one of {', '.join(GOVERNANCE_DEFAULTS)}")
        default = GOVERNANCE_DEFAULTS[k]
        parts = [x.strip() for x in v.split(",") if x.strip()]
        if isinstance(default, list):
            out[k] = parts
        elif isinstance(default, dict):
            limits = {}
            for part in parts:
                name, sep, count = part.rpartition(":")
                if not sep or not name:
                    raise ValueError(f"--govern: max_calls_per_tool expects tool:count, got {part!r}")
                limits[name] = int(count)
            out[k] = limits
        elif k.startswith("max_") and k != "max_handoff_cycles":
            out[k] = None if v.lower() in ("", "none", "null") else int(v)
            if out[k] is not None and out[k] < 0:
                raise ValueError(f"--govern: {k} must be >= 0")
        else:
            out[k] = _parse_value(v, default)
    return out


def read_policies(settings: ProcessorsSettings, idle_s: float = 1.5, timeout: float = 15.0,
                  gaps: OffsetGapGuard | None = None) -> dict[str, dict[str, Any]]:
    """Every tenant's latest policy record. Reads the whole topic from the start and stops once
    it has been idle for ``idle_s`` (not at the high watermark: Tansu reports it short), through
    ``gaps`` (one from the settings if None)."""
    from confluent_kafka import Consumer, TopicPartition

    codec = Codec(make_resolver(settings.schema_registry_url))
    name = topic_name("policies", settings.topic_prefix)
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"policy-read-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(name, timeout=10)
        parts = md.topics[name].partitions if name in md.topics else {}
        c.assign([TopicPartition(name, p, 0) for p in parts])
        if gaps is None:
            gaps = OffsetGapGuard.from_settings(settings)
        gaps.assign(start_positions(c, [TopicPartition(name, p) for p in parts]))
        seek = consumer_seek(c)
        copy = PolicyCopy(lambda b: codec.decode_as(POLICY, b))  # the workers' own record rules
        deadline, idle_until = time.monotonic() + timeout, time.monotonic() + idle_s
        while time.monotonic() < min(deadline, idle_until):
            msgs = c.consume(500, 0.2)
            if msgs:  # records held back to be read again are no idling
                idle_until = time.monotonic() + idle_s
            for m in gaps.admit(msgs, seek):
                if m.error() is None:
                    copy.apply(m.key(), m.value())
        return {k.decode("utf-8", "replace"): codec.decode_as(POLICY, v) for k, v in copy.policies.items()}
    finally:
        c.close()


def read_policy(settings: ProcessorsSettings, tenant: str, idle_s: float = 1.5,
                timeout: float = 15.0) -> dict[str, Any] | None:
    """The tenant's latest policy record, or None."""
    return read_policies(settings, idle_s, timeout).get(tenant)


def write_policy(settings: ProcessorsSettings, record: dict[str, Any]) -> None:
    from confluent_kafka import Producer

    codec = Codec(make_resolver(settings.schema_registry_url))
    p = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all", "partitioner": PARTITIONER})
    p.produce(topic_name("policies", settings.topic_prefix), codec.encode(POLICY, record), record["tenant_id"].encode())
    if p.flush(30):
        raise RuntimeError("the policy was not acknowledged by the broker within 30 s")


def set_policy(settings: ProcessorsSettings, tenant: str, *, version: str | None = None,
               capture_mode: str | None = None, actions: Iterable[str] = (), loops: Iterable[str] = (),
               budgets: Iterable[str] = (), retention_days: int | None = None,
               governance: Iterable[str] = (), base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merges the changes over the tenant's current policy and writes it; returns the record.
    Every change is parsed and checked before the current policy is read: bad input fails at
    once, without a broker round trip, and nothing is written."""
    loop_changes = _pairs(loops, LOOP_DEFAULTS, "--loop")
    budget_changes = _pairs(budgets, {**BUDGET_DEFAULTS, "run_max_steps": 0, "run_max_tokens": 0,
                                      "run_max_cost_usd": 0.0, "run_max_wall_s": 0.0, "tenant_usd_per_hour": 0.0,
                                      "tenant_usd_per_day": 0.0, "agent_usd_per_day": 0.0}, "--budget")
    _check_ranges(loop_changes, budget_changes)
    gov_changes = governance_pairs(governance)
    governance_of(gov_changes, strict=True)
    act_changes = {}
    for item in actions:
        if "=" not in item:
            raise ValueError(f"--action: expected category=mask|hash|drop, got {item!r}")
        k, v = item.split("=", 1)
        act_changes[k.strip()] = v.strip()
    validate_actions(act_changes)
    if capture_mode and capture_mode not in ("METADATA_ONLY", "REDACTED", "SECURE_REFERENCE"):
        raise ValueError(f"capture mode {capture_mode!r} is not METADATA_ONLY, REDACTED or SECURE_REFERENCE")
    current = base if base is not None else read_policy(settings, tenant)
    policy = TenantPolicy.from_record(current) if current else TenantPolicy.default(tenant)
    act = {**policy.actions, **act_changes}
    validate_actions(act)
    new_loops, new_budgets = {**policy.loops, **loop_changes}, {**policy.budgets, **budget_changes}
    _check_ranges(new_loops, new_budgets)
    new = TenantPolicy(
        tenant_id=tenant, version=version or time.strftime("v%Y%m%dT%H%M%S", time.gmtime()),
        capture_mode=capture_mode or policy.capture_mode, actions=act,
        loops=new_loops, budgets=new_budgets,
        retention_days=retention_days or policy.retention_days,
        governance=governance_of({**policy.governance, **gov_changes}, strict=True),
    )
    rec = new.to_record(int(time.time() * 1_000_000))
    write_policy(settings, rec)
    return rec
