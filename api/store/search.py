"""Run search: the conditions behind /v1/runs' filters on what a run's events carry.

Each filter is its own ``run_id IN (SELECT run_id FROM events WHERE ...)``, so several filters
mean "the run has an event matching each" (a TIMEOUT failure *and* a call to model m), never
"one event matching all". The event conditions are written so the skip indexes of
``0007_search_and_costs.sql``, ``0008`` and ``0009`` apply; the runs' start time, when
given, bounds the events read (a run's events are never older than its start).

Values are always bound parameters; nothing of the caller's is formatted into SQL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# filter name -> the events condition (one bound parameter, the value)
EVENT_CONDITIONS = {
    "failure_type": "kind = 'FAILURE' AND failure_type = {%s:String}",
    "failure_code": "kind = 'FAILURE' AND failure_code = {%s:String}",
    "tool": "kind = 'STEP' AND tool_name = {%s:String}",
    "model": "kind = 'STEP' AND request_model = {%s:String}",
    "end_user": "end_user_id = {%s:String}",
}


@dataclass
class SearchFilters:
    """Filters on what a run's events carry and on its totals. All are ANDed."""

    session: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    failure_type: str | None = None
    failure_code: str | None = None
    tool: str | None = None
    model: str | None = None
    end_user: str | None = None
    min_cost_usd: float | None = None
    min_duration_ms: float | None = None

    def where(self, params: dict[str, Any], since_us: int | None) -> str:
        """Conditions on ``runs`` rows before aggregation (``params`` needs ``tenant``)."""
        parts: list[str] = []
        bound = ""
        if since_us is not None:
            bound = " AND ts >= fromUnixTimestamp64Micro({s_since:Int64})"
            params["s_since"] = since_us
        if self.session is not None:
            # Every event of a run carries its session id, but the runs rows are matched by
            # run_id so a run's partial rows are all kept (totals stay whole).
            parts.append("run_id IN (SELECT run_id FROM runs WHERE tenant_id = {tenant:String} "
                         "AND session_id = {s_session:String})")
            params["s_session"] = self.session
        for name, cond in EVENT_CONDITIONS.items():
            value = getattr(self, name)
            if value is not None:
                pname = f"s_{name}"
                params[pname] = value
                parts.append(_events_in(cond % pname, bound))
        for i, (k, v) in enumerate(self.attributes):
            pname = f"s_attr{i}"
            params[pname + "k"], params[pname + "v"] = k, v
            # The exact test, and the form the key and value bloom filters apply to (0009).
            parts.append(_events_in(
                f"mapContains(attributes, {{{pname}k:String}}) "
                f"AND attributes[{{{pname}k:String}}] = {{{pname}v:String}}", bound))
        return " AND ".join(parts) if parts else "1"

    def having(self, params: dict[str, Any]) -> str:
        """Conditions on the aggregated run (totals)."""
        parts: list[str] = []
        if self.min_cost_usd is not None:
            parts.append("cost_usd >= {s_min_cost:Float64}")
            params["s_min_cost"] = self.min_cost_usd
        if self.min_duration_ms is not None:
            # A live run has no duration yet: it never matches a latency floor.
            parts.append("status != '' AND duration_ms >= {s_min_dur:Float64}")
            params["s_min_dur"] = self.min_duration_ms
        return " AND ".join(parts) if parts else "1"


def _events_in(cond: str, bound: str) -> str:
    return f"run_id IN (SELECT run_id FROM events WHERE tenant_id = {{tenant:String}} AND {cond}{bound})"


def parse_attribute(text: str) -> tuple[str, str]:
    """``key=value`` (split at the first '='); raises ValueError with the reason."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"attribute filter {text!r} is not key=value")
    return key, value
