"""``agentstream export otlp``: a consumer group on the redacted events topic that sends runs as
traces to an OTLP/HTTP backend (an OpenTelemetry Collector, Tempo, Honeycomb, Datadog...).

Batches of up to ``batch_max_spans`` spans, or whatever arrived within ``linger_s``, are POSTed
as OTLP/JSON to ``{endpoint}/v1/traces``. Retryable answers (429, 502, 503, 504, network errors)
are retried with exponential backoff and jitter (Retry-After honoured); the batch's offsets are
committed only after the backend accepted it, so a crash or an outage re-sends, never loses.
A non-retryable rejection (another 4xx) is logged and skipped: no retry can make the backend
take that body. Trace and span ids are derived from the events, so a re-sent batch carries the
same ids (backends deduplicate or show one span).
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentstream.schemas import EVENT, Codec, DecodeError, make_resolver, topic_name

from .otlp_out import export_request

log = logging.getLogger("agentstream.export.otlp")
RETRYABLE = {408, 429, 502, 503, 504}


class OtlpExportSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTSTREAM_EXPORT_", extra="ignore")

    bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = "agentstream."
    schema_registry_url: str | None = None
    group_id: str = "agentstream-export-otlp"
    # base URL: /v1/traces is appended unless the URL already ends with it
    endpoint: str = "http://localhost:4318"
    # OTEL_EXPORTER_OTLP_HEADERS style "k=v,k2=v2": usually an API key, so a secret
    headers: SecretStr = SecretStr("")
    tenant: str | None = None  # only this tenant's runs
    batch_max_spans: int = Field(500, ge=1, le=100_000)
    linger_s: float = Field(1.0, gt=0)
    max_retries: int = Field(8, ge=0)
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    timeout_s: float = 10.0
    session_timeout_ms: int = 45_000
    kafka_config: dict[str, str] = Field(default_factory=dict)

    def traces_url(self) -> str:
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else base + "/v1/traces"

    def header_map(self) -> dict[str, str]:
        out = {}
        for n, item in enumerate(self.headers.get_secret_value().split(","), 1):
            if item.strip():
                k, sep, v = item.partition("=")
                if not sep or not k.strip():
                    # never echo the item: a malformed one may be the secret itself
                    raise ValueError(f"header #{n} of --headers: expected name=value")
                out[k.strip()] = v.strip()
        return out


class BackendUnavailable(RuntimeError):
    pass


def post_batch(client: Any, url: str, body: dict[str, Any], headers: dict[str, str], settings: OtlpExportSettings,
               sleep: Callable[[float], None] = time.sleep) -> bool:
    """True when accepted (2xx), False when rejected for good; raises BackendUnavailable when
    the retries ran out (the caller stops without committing)."""
    for attempt in range(settings.max_retries + 1):
        delay = None
        try:
            r = client.post(url, json=body, headers=headers, timeout=settings.timeout_s)
            if 200 <= r.status_code < 300:
                partial = (r.json() if r.content else {}).get("partialSuccess") or {}
                if partial.get("rejectedSpans"):
                    log.warning("backend rejected %s spans: %s", partial["rejectedSpans"],
                                partial.get("errorMessage", ""))
                return True
            if r.status_code not in RETRYABLE:
                log.error("backend refused a batch (%s): %s", r.status_code, r.text[:300])
                return False
            ra = r.headers.get("retry-after")
            delay = float(ra) if ra and ra.isdigit() else None
        except ValueError:
            return True  # a 2xx whose body is not JSON: accepted all the same
        except Exception as exc:  # noqa: BLE001 - network errors are retried
            log.warning("OTLP post failed: %s: %s", type(exc).__name__, exc)
        if attempt == settings.max_retries:
            break
        backoff = min(settings.retry_max_s, settings.retry_initial_s * 2 ** attempt) * (0.5 + random.random() / 2)
        sleep(min(settings.retry_max_s, delay) if delay is not None else backoff)
    raise BackendUnavailable(f"{url} did not accept a batch after {settings.max_retries + 1} tries")


def run_export(settings: OtlpExportSettings, *, stop_after_spans: int = 0, idle_timeout: float | None = None,
               client: Any = None) -> dict[str, int]:
    """Runs until Ctrl-C, ``stop_after_spans`` spans sent, or ``idle_timeout`` s without events."""
    import httpx
    from confluent_kafka import Consumer

    headers = settings.header_map()
    codec = Codec(make_resolver(settings.schema_registry_url))
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": settings.group_id,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": settings.session_timeout_ms, **settings.kafka_config})
    c.subscribe([topic_name("events", settings.topic_prefix)])
    http = client or httpx.Client()
    stats = {"spans": 0, "batches": 0, "rejected_batches": 0, "undecodable": 0, "skipped": 0}
    url = settings.traces_url()
    last = time.monotonic()
    try:
        while not stop_after_spans or stats["spans"] < stop_after_spans:
            events: list[dict[str, Any]] = []
            # every record read, committed after the batch is sent (confluent's Message types
            # topic/partition/offset as optional; a record's are always set)
            msgs: list[Any] = []
            started = time.monotonic()
            while len(events) < settings.batch_max_spans and time.monotonic() - started < settings.linger_s:
                for m in c.consume(min(500, settings.batch_max_spans - len(events)), 0.2):
                    if m.error() is not None:
                        continue
                    msgs.append(m)
                    try:
                        ev = codec.decode_as(EVENT, m.value())
                    except DecodeError:
                        stats["undecodable"] += 1  # the sink sends those to the DLQ
                        continue
                    if settings.tenant and ev["tenant_id"] != settings.tenant:
                        stats["skipped"] += 1
                        continue
                    events.append(ev)
            if not msgs:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    break
                continue
            last = time.monotonic()
            body, n = export_request(events)
            if n:
                if post_batch(http, url, body, headers, settings):
                    stats["spans"] += n
                    stats["batches"] += 1
                else:
                    stats["rejected_batches"] += 1
            _commit(c, msgs)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
        if client is None:
            http.close()
    return stats


def _commit(consumer: Any, msgs: list[Any]) -> None:
    from confluent_kafka import TopicPartition

    top: dict[tuple[str, int], int] = {}
    for m in msgs:
        key = (m.topic(), m.partition())
        top[key] = max(top.get(key, -1), m.offset())
    consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in top.items()], asynchronous=False)
