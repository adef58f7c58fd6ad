"""Delivery of hook events to the ingest gateway, with an outbox for when it cannot take them.

A hook process lives for one payload, so nothing can retry in the background: events the
gateway did not accept (unreachable, 429, 5xx, no key yet) are appended to ``outbox.jsonl`` and
sent first by the next hook. The outbox is bounded (oldest dropped, with a warning on stderr)
and guarded by a lock, since hooks of parallel tool calls run at the same time. Events the
gateway rejected as invalid are dropped with a message: sending them again cannot help.
"""
from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path

OUTBOX_MAX = 10_000
TIMEOUT_S = 5.0


def deliver(gateway: str, api_key: str, state_dir: Path, events: list[dict]) -> int:
    """Sends the outbox and ``events``; returns how many the gateway accepted."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    box = state_dir / "outbox.jsonl"
    with open(state_dir / "outbox.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pending = [json.loads(ln) for ln in box.read_text().splitlines() if ln.strip()] \
            if box.exists() else []
        pending += events
        if not pending:
            return 0
        sent, keep = _post(gateway, api_key, pending)
        if len(keep) > OUTBOX_MAX:
            print(f"agentstream hook: outbox full, {len(keep) - OUTBOX_MAX} oldest events "
                  "dropped", file=sys.stderr)
            keep = keep[-OUTBOX_MAX:]
        tmp = box.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(e) + "\n" for e in keep))
        tmp.replace(box)
        return sent


def _post(gateway: str, api_key: str, events: list[dict]) -> tuple[int, list[dict]]:
    """(accepted, events to keep for later)."""
    import httpx

    if not api_key:
        print("agentstream hook: no gateway API key in the environment; events kept in the "
              "outbox", file=sys.stderr)
        return 0, events
    try:
        r = httpx.post(gateway.rstrip("/") + "/v1/ingest", json={"events": events},
                       headers={"Authorization": f"Bearer {api_key}"}, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        print(f"agentstream hook: gateway unreachable ({type(exc).__name__}); events kept",
              file=sys.stderr)
        return 0, events
    if r.status_code == 429 or r.status_code >= 500:
        print(f"agentstream hook: gateway answered {r.status_code}; events kept",
              file=sys.stderr)
        return 0, events
    if r.status_code in (401, 403):
        print(f"agentstream hook: gateway refused the key ({r.status_code}); events kept",
              file=sys.stderr)
        return 0, events
    if r.status_code >= 400:
        print(f"agentstream hook: gateway rejected the batch ({r.status_code}): "
              f"{r.text[:300]}", file=sys.stderr)
        return 0, []
    body = r.json()
    for rej in body.get("rejected") or ():
        print(f"agentstream hook: event rejected: {rej.get('reason')}", file=sys.stderr)
    return int(body.get("accepted", 0)), []
