"""/v1/feedback validation and /v1/policies input rules, without a broker."""
from __future__ import annotations

from api_fleet import RunBuilder, insert_runs


def test_feedback_values_are_bounded(api, auth):
    for body in [
        {"interaction_id": "r1", "feedback_type": "user_rating", "value": "meh"},
        {"interaction_id": "r1", "feedback_type": "user_rating", "value": "positive", "comment": "free text"},
        {"interaction_id": "r1", "feedback_type": "stars", "value": "5"},
        {"interaction_id": "has space", "feedback_type": "user_rating", "value": "negative"},
    ]:
        r = api.post("/v1/feedback", json=body, headers=auth)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == "validation_error"


def test_feedback_only_for_own_interactions(api, ch, tenant, auth, keys_file, unique):
    from agentstream.api.auth import add_key

    run = RunBuilder("someone-else-" + unique)
    run.end()
    insert_runs(ch, [run])
    r = api.post("/v1/feedback", json={"interaction_id": run.run_id, "feedback_type": "user_rating",
                                       "value": "negative"}, headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    mine = RunBuilder(tenant)
    mine.end()
    insert_runs(ch, [mine])
    r = api.post("/v1/feedback", json={"interaction_id": mine.run_id, "feedback_type": "negative_signal",
                                       "value": "human_takeover"}, headers=auth)
    # validated and owned; no broker configured in unit tests, so the write path says so
    assert r.status_code == 503 and r.json()["error"]["code"] == "kafka_not_configured"
    read_only = add_key(keys_file, tenant, scopes=["read"])
    r = api.post("/v1/feedback", json={"interaction_id": mine.run_id, "feedback_type": "user_rating",
                                       "value": "positive"}, headers={"X-API-Key": read_only})
    assert r.status_code == 403


def test_policy_input_rules(api, auth):
    for body in [{"retention_days": 0}, {"capture_mode": "EVERYTHING"},
                 {"redaction_actions": {"email": "shout"}}, {"loops": {"max_repeats": -1}},
                 {"budgets": {"run_max_cost_usd": -5}}, {"unknown": 1}]:
        r = api.put("/v1/policies", json=body, headers=auth)
        assert r.status_code == 422, (body, r.text)
    r = api.put("/v1/policies", json={"retention_days": 7}, headers=auth)
    assert r.status_code == 503 and r.json()["error"]["code"] == "kafka_not_configured"
