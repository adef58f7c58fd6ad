"""Tenant policies: the Avro ``Policy`` record turned into what the detectors read.

The compacted ``policies`` topic (keyed by tenant_id) is followed by every worker (policy_follower.py);
``PolicyBook`` caches the decoded form per tenant so the hot path does a dict lookup, not a decode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .redaction.engine import ACTIONS, DEFAULT_ACTIONS

DEFAULT_VERSION = "default"

# Every threshold is the amount allowed (a finding goes over it). Policy v2 added
# ``loops.repeat_window`` (logical steps a repeat is counted over, 0 = the whole run),
# ``budgets.warn_fraction`` (share of a budget that raises a warning, 0 = none) and
# ``governance``; a v1 record read through the v2 schema gets these defaults.
LOOP_DEFAULTS = {"max_repeats": 5, "max_ping_pong": 4, "max_no_progress": 3, "max_retries": 5,
                 "stop_on_loop": True, "repeat_window": 24}
BUDGET_DEFAULTS: dict[str, Any] = {
    "run_max_steps": None, "run_max_tokens": None, "run_max_cost_usd": None, "run_max_wall_s": None,
    "tenant_usd_per_hour": None, "tenant_usd_per_day": None, "agent_usd_per_day": None,
    "hard_limit": False, "warn_fraction": 0.8,
}
# Rules a governance violation is raised under; ``stop_on`` names a subset. Approval violations
# always stop the run (an unapproved or substituted high-risk action is never let run on).
GOVERNANCE_RULES = ("tool_denied", "tool_not_allowed", "max_tool_calls", "forbidden_args")
GOVERNANCE_DEFAULTS: dict[str, Any] = {
    "tool_allow": [], "tool_deny": [], "max_calls_per_tool": {}, "forbidden_arg_digests": [],
    "require_approval": [], "stop_on": ["tool_denied", "tool_not_allowed", "forbidden_args"],
    "durable_tools": [], "max_delegation_depth": None, "max_fan_out": None, "max_handoff_cycles": 1,
    "stop_on_multi_agent": True,
}


def governance_of(rec: Mapping[str, Any] | None, strict: bool = False) -> dict[str, Any]:
    """The governance mapping with every default filled. ``strict`` (the writers: CLI, API)
    refuses unknown ``stop_on`` rules, since a typo there would silently turn a STOP into an alert
    only; the processors' read path never raises on a stored record (it cannot name a rule that
    exists, so ignoring it changes nothing)."""
    g = {**GOVERNANCE_DEFAULTS, **(rec or {})}
    bad = [r for r in g["stop_on"] if r not in GOVERNANCE_RULES]
    if bad and not strict:
        g["stop_on"] = [r for r in g["stop_on"] if r in GOVERNANCE_RULES]
    elif bad:
        raise ValueError(f"governance.stop_on: unknown rule(s) {', '.join(map(repr, bad))}; "
                         f"one of {', '.join(GOVERNANCE_RULES)}")
    for k, v in g["max_calls_per_tool"].items():
        if strict and int(v) < 0:
            raise ValueError(f"governance.max_calls_per_tool[{k!r}] must be >= 0, got {v}")
    return g


@dataclass(frozen=True)
class TenantPolicy:
    tenant_id: str
    version: str = DEFAULT_VERSION
    capture_mode: str = "METADATA_ONLY"
    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    loops: Mapping[str, Any] = field(default_factory=lambda: dict(LOOP_DEFAULTS))
    budgets: Mapping[str, Any] = field(default_factory=lambda: dict(BUDGET_DEFAULTS))
    retention_days: int = 30
    governance: Mapping[str, Any] = field(default_factory=lambda: governance_of(None))

    @classmethod
    def default(cls, tenant_id: str) -> "TenantPolicy":
        return cls(tenant_id)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "TenantPolicy":
        # Unknown actions are kept as written: the engine refuses them at use, which quarantines
        # (fail closed) instead of silently falling back to a weaker action.
        actions = {**DEFAULT_ACTIONS, **(rec.get("redaction_actions") or {})}
        return cls(
            tenant_id=rec["tenant_id"],
            version=rec.get("version") or DEFAULT_VERSION,
            capture_mode=rec.get("capture_mode") or "METADATA_ONLY",
            actions=actions,
            loops={**LOOP_DEFAULTS, **(rec.get("loops") or {})},
            budgets={**BUDGET_DEFAULTS, **(rec.get("budgets") or {})},
            retention_days=int(rec.get("retention_days") or 30),
            governance=governance_of(rec.get("governance")),
        )

    def to_record(self, updated_us: int) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id, "version": self.version, "updated_us": updated_us,
            "capture_mode": self.capture_mode, "redaction_actions": dict(self.actions),
            "retention_days": self.retention_days, "loops": dict(self.loops),
            "budgets": dict(self.budgets), "governance": dict(self.governance),
        }


def validate_actions(actions: Mapping[str, str]) -> None:
    from .redaction.rules import CATEGORIES

    for cat, act in actions.items():
        if cat not in CATEGORIES:
            raise ValueError(f"unknown category {cat!r}; one of {', '.join(CATEGORIES)}")
        if act not in ACTIONS:
            raise ValueError(f"unknown action {act!r} for {cat}; one of {', '.join(ACTIONS)}")


class PolicyBook:
    """tenant_id -> TenantPolicy, decoded once per policy record seen."""

    def __init__(self, lookup: Callable[[str], bytes | None] | None = None,
                 decode: Callable[[bytes], Mapping[str, Any]] | None = None) -> None:
        self._lookup = lookup
        self._decode = decode
        self._cache: dict[str, tuple[bytes | None, TenantPolicy]] = {}
        self._static: dict[str, TenantPolicy] = {}

    def set(self, policy: TenantPolicy) -> None:
        self._static[policy.tenant_id] = policy

    def get(self, tenant_id: str) -> TenantPolicy:
        if tenant_id in self._static:
            return self._static[tenant_id]
        raw = self._lookup(tenant_id) if self._lookup else None
        hit = self._cache.get(tenant_id)
        if hit is not None and (hit[0] is raw or hit[0] == raw):
            return hit[1]
        if raw is None or self._decode is None:
            policy = TenantPolicy.default(tenant_id)
        else:
            policy = TenantPolicy.from_record(self._decode(raw))
        self._cache[tenant_id] = (raw, policy)
        return policy
