"""PUT /v1/policies refuses a bad Policy v2 body with a 422 naming the field, before anything is
written (no broker is configured here, so a body that passed validation would fail differently)."""
from __future__ import annotations

import pytest

from agentstream.api.routes.policies import PolicyIn


@pytest.mark.parametrize("body, field", [
    ({"governance": {"stop_on": ["tool_deny"]}}, "stop_on"),
    ({"governance": {"max_calls_per_tool": {"search": -1}}}, "max_calls_per_tool"),
    ({"governance": {"tool_denny": ["x"]}}, "tool_denny"),
    ({"governance": {"tool_deny": [""]}}, "tool_deny"),
    ({"governance": {"forbidden_arg_digests": ["'; DROP TABLE"]}}, "forbidden_arg_digests"),
    ({"governance": {"max_fan_out": -2}}, "max_fan_out"),
    ({"loops": {"repeat_window": -1}}, "repeat_window"),
    ({"budgets": {"warn_fraction": 1.5}}, "warn_fraction"),
])
def test_bad_governance_is_a_422_naming_the_field(api, auth, body, field):
    r = api.put("/v1/policies", json=body, headers=auth)
    assert r.status_code == 422, r.text
    assert field in r.text


def test_v2_defaults_match_the_processors_defaults():
    from agentstream.stream_processors.policies import BUDGET_DEFAULTS, GOVERNANCE_DEFAULTS, LOOP_DEFAULTS

    p = PolicyIn().model_dump(mode="json")
    assert p["governance"] == GOVERNANCE_DEFAULTS
    assert p["loops"] == LOOP_DEFAULTS and p["budgets"] == BUDGET_DEFAULTS


def test_v2_defaults_match_the_avro_schema_defaults():
    import json

    from agentstream.schemas import POLICY, load_catalog

    schema = json.loads(load_catalog().latest(POLICY).text)
    gov = next(f for f in schema["fields"] if f["name"] == "governance")["type"]
    assert {f["name"]: f["default"] for f in gov["fields"]} == PolicyIn().model_dump(mode="json")["governance"]
