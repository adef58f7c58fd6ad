"""GET /v1/export: selected runs streamed as JSONL or OTLP/JSON lines; also the worst-N sample."""
from __future__ import annotations

from enum import Enum

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from ..auth import Principal
from ..db import Db
from ..deps import get_db, require_read
from ..errors import ERROR_RESPONSES, ApiError
from ..store.anonymize import MIN_KEY_BYTES
from ..store.export import ExportRequest, stream_export
from ..store.runs import RunFilters
from .runs import run_filters

router = APIRouter(prefix="/v1/export", tags=["export"], responses=ERROR_RESPONSES)


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    otlp = "otlp"


class WorstBy(str, Enum):
    cost = "cost"
    latency = "latency"
    failures = "failures"
    retries = "retries"


MEDIA = {"jsonl": "application/x-ndjson", "otlp": "application/x-ndjson"}


@router.get(
    "", summary="Export runs (streamed), or sample the worst N",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}},
                     "description": "one run per line: the /v1/runs/{id} shape (jsonl) or an OTLP "
                                    "ExportTraceServiceRequest (otlp)"}},
    description="Filters are those of /v1/runs. Without `worst`, runs come newest first (at most "
                "`limit`); with `worst=N`, the N worst runs by `by`. `anonymize=true` replaces ids "
                "and names with HMAC pseudonyms under the key in `X-Pseudonym-Key` (at least 16 "
                "bytes; the same key gives the same pseudonyms) and keeps only metadata fields.",
)
def get_export(
    filters: RunFilters = Depends(run_filters),
    format: ExportFormat = Query(ExportFormat.jsonl, description="jsonl or otlp"),
    limit: int | None = Query(None, ge=1, le=10_000_000, description="at most this many runs"),
    worst: int | None = Query(None, ge=1, le=100_000, description="sample: the N worst runs"),
    by: WorstBy = Query(WorstBy.cost, description="what 'worst' ranks by"),
    anonymize: bool = Query(False),
    pseudonym_key: str | None = Header(None, alias="X-Pseudonym-Key", max_length=1024),
    who: Principal = Depends(require_read),
    db: Db = Depends(get_db),
) -> StreamingResponse:
    key = None
    if anonymize:
        if not pseudonym_key or len(pseudonym_key.encode()) < MIN_KEY_BYTES:
            raise ApiError(422, "pseudonym_key_required", "anonymize=true needs an X-Pseudonym-Key "
                           f"header of at least {MIN_KEY_BYTES} bytes")
        key = pseudonym_key.encode()
    if worst is not None and limit is not None:
        raise ApiError(422, "validation_error", "give either worst or limit, not both")
    req = ExportRequest(filters=filters, fmt=format.value, limit=worst or limit,
                        worst_by=by.value if worst is not None else None, pseudonym_key=key)
    what = f"worst-{worst}-by-{by.value}" if worst is not None else "export"
    name = f"agentstream-{what}.{format.value}.jsonl"
    return StreamingResponse(stream_export(db, who.tenant_id, req), media_type=MEDIA[format.value],
                             headers={"Content-Disposition": f'attachment; filename="{name}"',
                                      "Cache-Control": "no-store"})
