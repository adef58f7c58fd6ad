"""Ids may hold "/" (schemas/id_format.py: letters, digits and ._:/+=#-): a run "ci/org/repo#42"
is stored like any other, so every route that names a run or a session must reach it too. A
client sends the slash percent-encoded (encodeURIComponent, the CLI's run_path); the server sees
it decoded, so without path parameters these routes answered 404 for runs they hold."""
from __future__ import annotations

import pytest
from api_fleet import RunBuilder, insert_runs

from agentstream.cli.runs_client import run_path

IDS = ["ci/org/repo#42", "a/b/timeline-x", "team/job:7+1=8", "x/", "/lead"]


@pytest.fixture
def slashed(ch, tenant):
    runs = []
    for i, rid in enumerate(IDS):
        r = RunBuilder(tenant, agent="ci-agent", run_id=rid, session_id="team/session-1")
        r.tool("checkout", 20)
        r.llm("review", 100, 200, 20, 0.01)
        runs.append(r.end("SUCCESS" if i % 2 == 0 else "FAILURE"))
    insert_runs(ch, runs)
    return runs


@pytest.mark.parametrize("rid", IDS)
def test_every_run_route_reaches_a_run_whose_id_has_slashes(api, auth, slashed, rid):
    detail = api.get(run_path(rid), headers=auth)
    assert detail.status_code == 200, detail.text
    assert detail.json()["run"]["run_id"] == rid
    for tail in ("timeline", "explain", "topology"):
        r = api.get(run_path(rid, tail), headers=auth)
        assert r.status_code == 200, (tail, r.text)
    assert api.get(run_path(rid, "timeline"), headers=auth).json()["run_id"] == rid
    other = IDS[(IDS.index(rid) + 1) % len(IDS)]
    diff = api.get(run_path(rid, "diff", other), headers=auth)
    assert diff.status_code == 200, diff.text
    assert (diff.json()["a"]["run_id"], diff.json()["b"]["run_id"]) == (rid, other)
    # a finished run: the operation is refused for what it is, not as an unknown run
    stop = api.post(run_path(rid, "stop"), json={"reason": "test"}, headers=auth)
    assert stop.status_code == 409, stop.text


def test_a_session_whose_id_has_slashes(api, auth, slashed):
    r = api.get("/v1/sessions/team%2Fsession-1", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["session"]["session_id"] == "team/session-1"


def test_a_slash_does_not_reach_another_tenants_run(api, slashed, keys_file):
    from agentstream.api.auth import add_key

    other = {"Authorization": "Bearer " + add_key(keys_file, "other-tenant", scopes=["read"], name="x")}
    for rid in IDS:
        assert api.get(run_path(rid), headers=other).status_code == 404
        assert api.get(run_path(rid, "timeline"), headers=other).status_code == 404
