"""Alert consumers: ``agentstream alerts tail`` and the webhook forwarder.

The forwarder commits an alert's offset only after the webhook settled it (see alert_forwarder.py
and its chain, forward_steps.py); failures that may clear are retried with exponential backoff
and jitter, and a 4xx other than 408/429 is logged and skipped (the receiver will never accept
that body). Slack gets ``{"text", "blocks"}``; PagerDuty gets an
Events API v2 ``trigger`` with ``dedup_key`` = alert_id, so a replayed alert does not page twice.

Several workers write the alerts topic at once, and on the embedded broker a fetch can then skip
a batch (schemas/offset_gaps.py): ``alerts tail`` reads through an ``OffsetGapGuard``, which seeks
a partition back over a jump and reads it again (the forwarder does too: alert_forwarder.py).
"""
from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from typing import Any, Callable, TextIO

from agentstream.schemas import ALERT, Codec, DecodeError, make_resolver, topic_name
from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek, start_positions
from agentstream.schemas.step_retry import RetryLater, backoff_delay, parse_retry_after

from .settings import ProcessorsSettings

_SEVERITY_PD = {"INFO": "info", "WARNING": "warning", "CRITICAL": "critical"}


def format_line(a: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a["detected_us"] / 1e6))
    who = "/".join(x for x in (a["tenant_id"], a.get("agent_id"), a.get("agent_version"), a.get("run_id")) if x)
    ev = " ".join(f"{k}={v}" for k, v in sorted(a.get("evidence", {}).items()))
    return f"{when} {a['severity']:<8} {a['alert_type']:<20} {who}  {a['title']}  {ev}"


def slack_body(a: dict[str, Any]) -> dict[str, Any]:
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in sorted(a.get("evidence", {}).items())][:10]
    text = f"[{a['severity']}] {a['alert_type']}: {a['title']} (tenant {a['tenant_id']})"
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                                     *([{"type": "section", "fields": fields}] if fields else [])]}


def pagerduty_body(a: dict[str, Any], routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": a["alert_id"],
            "payload": {"summary": f"{a['alert_type']}: {a['title']}"[:1024],
                        "source": f"agentstream/{a['tenant_id']}/{a.get('agent_id') or '-'}",
                        "severity": _SEVERITY_PD.get(a["severity"], "warning"),
                        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a["detected_us"] / 1e6)),
                        "custom_details": {**a.get("evidence", {}), "run_id": a.get("run_id"),
                                           "agent_version": a.get("agent_version")}}}


DELIVERED, REJECTED, UNAVAILABLE = "delivered", "rejected", "unavailable"


def post_once(client: Any, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    """One POST: ``DELIVERED`` (2xx) or ``REJECTED`` (a 4xx other than 408/429: no retry can
    change it); raises ``RetryLater`` for what may clear (5xx, 408/429 with its Retry-After, a
    network error or timeout). Any other exception is a bug and propagates."""
    import httpx

    try:
        r = client.post(url, json=body, timeout=10.0, headers=headers)
    except (httpx.TransportError, ConnectionError, TimeoutError) as exc:
        print(f"webhook error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
    if 200 <= r.status_code < 300:
        return DELIVERED
    if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
        print(f"webhook rejected alert ({r.status_code}): {r.text[:200]}", file=sys.stderr)
        return REJECTED
    raise RetryLater(f"HTTP {r.status_code}", parse_retry_after(r.headers.get("retry-after")))


def deliver(client: Any, url: str, body: dict[str, Any], max_retries: int = 6, base_s: float = 0.5,
            cap_s: float = 30.0, sleep: Callable[[float], None] = time.sleep,
            headers: dict[str, str] | None = None) -> str:
    """Posts until the receiver settles it: ``DELIVERED`` (2xx), ``REJECTED`` (a 4xx other than
    408/429: no retry can change it) or ``UNAVAILABLE`` (5xx, 408/429 or network errors on every
    one of the 1 + max_retries tries), waiting ``backoff_delay`` between tries. Each try is one
    POST; there is never a post after a 2xx. Any other exception (a body that cannot be sent, a
    client bug) propagates: no retry can change it. (The forwarder's chain makes the same tries
    without sleeping: stream_processors/forward_steps.py.)"""
    for attempt in range(max_retries + 1):
        try:
            return post_once(client, url, body, headers)
        except RetryLater as exc:
            if attempt == max_retries:
                break
            sleep(backoff_delay(attempt, base_s, cap_s, exc.retry_after))
    return UNAVAILABLE


def post_with_retries(client: Any, url: str, body: dict[str, Any], max_retries: int = 6, base_s: float = 0.5,
                      cap_s: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> bool:
    """True when accepted; False when the receiver rejected it for good or retries ran out."""
    return deliver(client, url, body, max_retries, base_s, cap_s, sleep) == DELIVERED


def _consumer(settings: ProcessorsSettings, group: str, from_beginning: bool, **callbacks: Any) -> Any:
    """``callbacks``: ``on_assign``/``on_revoke`` for ``subscribe`` (the offset-gap guard, and the
    forwarder's chain driver)."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": group,
                  "auto.offset.reset": "earliest" if from_beginning else "latest",
                  "enable.auto.commit": False, "session.timeout.ms": int(settings.broker_session_timeout * 1000)})
    c.subscribe([topic_name("alerts", settings.topic_prefix)], **callbacks)
    return c


def tail_alerts(settings: ProcessorsSettings, tenant: str | None = None, from_beginning: bool = False,
                limit: int = 0, as_json: bool = False, out: TextIO = sys.stdout,
                idle_timeout: float | None = None, stop: threading.Event | None = None,
                gaps: OffsetGapGuard | None = None) -> int:
    """Prints alerts until ``limit``, ``idle_timeout``, ``stop`` (set by the CLI's SIGINT/SIGTERM
    handler: the loop ends between polls, never inside librdkafka) or Ctrl-C; returns how many.
    Reads through ``gaps`` (one from the settings if None)."""
    codec = Codec(make_resolver(settings.schema_registry_url))
    stop = stop or threading.Event()
    n = 0
    last = time.monotonic()
    c = None
    guard = gaps if gaps is not None else OffsetGapGuard.from_settings(settings)
    reset = "earliest" if from_beginning else "latest"
    try:
        c = _consumer(settings, f"alerts-tail-{uuid.uuid4().hex}", from_beginning,
                      on_assign=lambda cons, tps: guard.assign(start_positions(cons, tps, reset)),
                      on_revoke=lambda _cons, tps: guard.forget((tp.topic, tp.partition) for tp in tps))
        seek = consumer_seek(c)
        while not stop.is_set() and (not limit or n < limit):
            if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                break
            for m in guard.admit(c.consume(100, 0.5), seek):
                if m.error() is not None:
                    continue
                try:
                    a = codec.decode_as(ALERT, m.value())
                except DecodeError as exc:
                    print(f"undecodable alert at {m.partition()}/{m.offset()}: {exc.reason}", file=sys.stderr)
                    continue
                if tenant and a["tenant_id"] != tenant:
                    continue
                out.write((json.dumps(a) if as_json else format_line(a)) + "\n")
                out.flush()
                n += 1
                last = time.monotonic()
                if limit and n >= limit:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if c is not None:
            close_within(c, TAIL_CLOSE_S)
    return n


# A tail commits nothing, so its consumer's close need not wait on a group coordinator that a
# stopped broker will never answer: the command exits after this long whatever librdkafka does.
TAIL_CLOSE_S = 5.0


def close_within(consumer: Any, seconds: float) -> bool:
    """Closes ``consumer`` on a daemon thread, waiting at most ``seconds``; True if it closed."""
    t = threading.Thread(target=consumer.close, name="consumer-close", daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def forward_alerts(settings: ProcessorsSettings, webhook: str | None = None, fmt: str = "slack",
                   routing_key: str = "", tenant: str | None = None, max_retries: int = 6,
                   group: str | None = None, stop_after: int = 0, client: Any = None,
                   base_s: float = 0.5, ledger: str | None = None, idle_timeout: float | None = None) -> int:
    """Forwards alerts; returns how many posts were accepted. ``webhook``: every alert to that one
    URL as ``fmt`` (slack, pagerduty or webhook); without it, each tenant's routing rules decide.
    See alert_forwarder.py for silences, the ledger and offsets."""
    from agentstream.schemas.alerting import AlertingError, Destination

    from .alert_forwarder import forward

    static = None
    if webhook:
        if fmt not in ("slack", "pagerduty", "webhook"):
            raise ValueError("format must be slack, pagerduty or webhook")
        try:
            static = Destination.from_doc({"kind": fmt, "url": webhook, "routing_key": routing_key})
        except AlertingError as exc:
            raise ValueError(str(exc)) from exc
    stats = forward(settings, static=static, tenant=tenant, max_retries=max_retries, group=group,
                    stop_after=stop_after, client=client, base_s=base_s, ledger=ledger,
                    idle_timeout=idle_timeout)
    return stats.delivered
