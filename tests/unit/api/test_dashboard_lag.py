"""GET /ui/api/lag: the pipeline is shared, so a tenant's session sees whether it keeps up, and by
an order of magnitude, never consumer groups, offsets or rates (other tenants' volume)."""
from __future__ import annotations

from agentstream.api.dashboard.lag import LagReader, StageLag, lag_bucket, tenant_view
from agentstream.api.dashboard.sessions import COOKIE_NAME

READING = {
    "available": True,
    "caveat": "Lag = reported end offset − committed offset.",
    "stages": [s.to_json() for s in (
        StageLag("agentstream-sink", "p.events", "sink (events → ClickHouse)", 4, 91_234, 91_240, 6,
                 True, 12.5, [{"partition": 0, "committed": 91_234, "reported_end": 91_240, "lag": 6}]),
        StageLag("agentstream-redaction", "p.raw", "redaction (raw → events)", 4, 88_000, 88_000, 0,
                 True, 3.0),
        StageLag("globex-forwarder", "p.alerts", "alerts consumer [globex-forwarder]", 1, 77, 250_077,
                 250_000, False, 0.0),
    )],
}


def test_tenant_view_drops_groups_offsets_rates_and_other_groups():
    view = tenant_view(READING)
    text = repr(view)
    for secret in ("globex", "agentstream-sink", "91234", "91_234", "88000", "12.5", "p.events", "partition"):
        assert secret not in text, secret
    assert view["available"] is True
    assert view["stages"] == [
        {"stage": "redaction (raw → events)", "behind": False, "lag": "none", "exact": True},
        {"stage": "sink (events → ClickHouse)", "behind": True, "lag": "under 1,000", "exact": True},
    ]
    assert "every tenant" in view["caveat"]


def test_buckets_and_an_unavailable_broker():
    assert [lag_bucket(n) for n in (0, 1, 1000, 1001, 100_000, 100_001)] == [
        "none", "under 1,000", "under 1,000", "1,000 – 100,000", "1,000 – 100,000", "over 100,000"]
    down = tenant_view({"available": False, "stages": [], "note": "Kafka unavailable: broker-3.internal:9092"})
    assert down == {"available": False, "stages": [], "note": "consumer lag is unavailable right now"}


def test_a_session_gets_the_tenant_view_only(api, key, monkeypatch):
    monkeypatch.setattr(LagReader, "read", lambda self: READING)
    r = api.post("/ui/login", data={"api_key": key, "next": "/ui"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.cookies.get(COOKIE_NAME)
    api.cookies.clear()
    got = api.get("/ui/api/lag", cookies={COOKIE_NAME: cookie})
    assert got.status_code == 200, got.text
    assert got.json() == tenant_view(READING)
    assert "globex" not in got.text and "91234" not in got.text
