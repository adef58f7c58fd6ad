"""Tenant policies: the Avro ``Policy`` record turned into what the detectors read.

The compacted ``policies`` topic (keyed by tenant_id) is read as a global table by every worker;
``PolicyBook`` caches the decoded form per tenant so the hot path does a dict lookup, not a decode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .redaction.engine import ACTIONS, DEFAULT_ACTIONS

DEFAULT_VERSION = "default"

# Every threshold is the amount allowed (a finding goes over it). The detectors also read
# ``loops.repeat_window`` (logical steps a repeat is counted over, 0 = the whole run; default
# 24) and ``budgets.warn_fraction`` (share of a budget that raises a warning, 0 = none; default
# 0.8) when a policy has them: the Avro Policy v1 does not carry them yet, so they are not
# defaults here (``policy set`` refuses them rather than dropping them silently).
LOOP_DEFAULTS = {"max_repeats": 5, "max_ping_pong": 4, "max_no_progress": 3, "max_retries": 5,
                 "stop_on_loop": True}
BUDGET_DEFAULTS: dict[str, Any] = {
    "run_max_steps": None, "run_max_tokens": None, "run_max_cost_usd": None, "run_max_wall_s": None,
    "tenant_usd_per_hour": None, "tenant_usd_per_day": None, "agent_usd_per_day": None,
    "hard_limit": False,
}


@dataclass(frozen=True)
class TenantPolicy:
    tenant_id: str
    version: str = DEFAULT_VERSION
    capture_mode: str = "METADATA_ONLY"
    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    loops: Mapping[str, Any] = field(default_factory=lambda: dict(LOOP_DEFAULTS))
    budgets: Mapping[str, Any] = field(default_factory=lambda: dict(BUDGET_DEFAULTS))
    retention_days: int = 30

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
        )

    def to_record(self, updated_us: int) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id, "version": self.version, "updated_us": updated_us,
            "capture_mode": self.capture_mode, "redaction_actions": dict(self.actions),
            "retention_days": self.retention_days, "loops": dict(self.loops),
            "budgets": dict(self.budgets),
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
