"""/v1/alerts listing and the SSE stream."""
from __future__ import annotations

import json
import threading
import time

from api_fleet import insert_alerts, now_us


def test_alerts_list_filters_and_pages(api, ch, tenant, auth, unique):
    t = now_us()
    insert_alerts(ch, tenant, [
        {"alert_id": f"a{i}", "alert_type": "loop" if i % 2 else "budget_breach",
         "severity": "CRITICAL" if i == 0 else "WARNING", "detected_us": t - i * 1_000_000,
         "run_id": f"run{i}", "evidence": {"repeats": str(i)}} for i in range(5)])
    insert_alerts(ch, "other-" + unique, [{"alert_id": "x", "title": "not yours"}])
    ids, cursor = [], None
    while True:
        body = api.get("/v1/alerts", params={"limit": 2} | ({"cursor": cursor} if cursor else {}),
                       headers=auth).json()
        ids += [a["alert_id"] for a in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert ids == ["a0", "a1", "a2", "a3", "a4"]
    loops = api.get("/v1/alerts", params={"alert_type": "loop"}, headers=auth).json()["items"]
    assert [a["alert_id"] for a in loops] == ["a1", "a3"] and loops[0]["evidence"] == {"repeats": "1"}
    crit = api.get("/v1/alerts", params={"severity": "CRITICAL"}, headers=auth).json()["items"]
    assert [a["alert_id"] for a in crit] == ["a0"]
    bad = api.get("/v1/alerts", params={"severity": "LOUD"}, headers=auth)
    assert bad.status_code == 422


def _events(text: str) -> list[dict]:
    out = []
    for frame in text.split("\n\n"):
        lines = dict(ln.split(": ", 1) for ln in frame.splitlines() if ": " in ln and not ln.startswith(":"))
        if lines.get("event") == "alert":
            out.append({"id": lines["id"], **json.loads(lines["data"])})
    return out


def test_stream_sends_new_alerts_and_resumes(api, ch, tenant, auth):
    def later():
        time.sleep(0.5)
        insert_alerts(ch, tenant, [{"alert_id": "new-1", "title": "fresh"}])

    th = threading.Thread(target=later)
    th.start()
    with api.stream("GET", "/v1/alerts/stream", params={"max_events": 1, "max_seconds": 60},
                    headers=auth) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    th.join()
    got = _events(body)
    assert [e["alert_id"] for e in got] == ["new-1"]

    insert_alerts(ch, tenant, [{"alert_id": "new-2", "title": "after reconnect"}])
    with api.stream("GET", "/v1/alerts/stream", params={"max_events": 1, "max_seconds": 60},
                    headers={**auth, "Last-Event-ID": got[0]["id"]}) as r:
        body = "".join(r.iter_text())
    assert [e["alert_id"] for e in _events(body)] == ["new-2"]


def test_stream_bounded_by_time_and_auth(api, auth):
    r = api.get("/v1/alerts/stream", params={"max_seconds": 0.3}, headers=auth)
    assert r.status_code == 200 and _events(r.text) == []
    assert api.get("/v1/alerts/stream").status_code == 401
