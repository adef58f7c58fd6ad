"""Streaming export of selected runs (JSONL or OTLP/JSON lines), and the worst-N sample.

Memory stays bounded whatever the export's size: runs are selected a page at a time by keyset
(``PAGE`` run rows), and each run's events are read, formatted and yielded before the next
run's are read. The response is the generator; nothing is accumulated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..db import Db
from .anonymize import Pseudonymizer, anonymize_detail
from .otlp_export import run_to_otlp
from .runs import RunFilters, run_detail, runs_subquery

PAGE = 200
# --by for the sample: the run column ranked, worst (largest) first.
WORST_BY = {"cost": "cost_usd", "latency": "duration_ms", "failures": "failure_count",
            "retries": "retry_count"}
FORMATS = ("jsonl", "otlp")


@dataclass
class ExportRequest:
    filters: RunFilters
    fmt: str = "jsonl"
    limit: int | None = None  # at most this many runs (None: all that match)
    worst_by: str | None = None  # a key of WORST_BY: the sample, ranked
    pseudonym_key: bytes | None = None  # set: anonymised


def select_run_ids(db: Db, tenant: str, req: ExportRequest) -> Iterator[str]:
    """The matching run ids in export order, a page of ``PAGE`` at a time."""
    params: dict[str, Any] = {"tenant": tenant}
    base = runs_subquery(req.filters, params)
    if req.worst_by is not None:
        col = WORST_BY[req.worst_by]
        params["n"] = req.limit or 50
        rows = db.rows(f"SELECT run_id FROM ({base}) ORDER BY {col} DESC, run_id "
                       "LIMIT {n:UInt32}", params)
        yield from (r["run_id"] for r in rows)
        return
    left = req.limit
    after: tuple[int, str] | None = None
    while left is None or left > 0:
        n = PAGE if left is None else min(PAGE, left)
        p = dict(params, n=n)
        where = ""
        if after is not None:
            where = "WHERE (started_us, run_id) < ({c_ts:Int64}, {c_id:String})"
            p["c_ts"], p["c_id"] = after
        rows = db.rows(f"SELECT run_id, started_us FROM ({base}) {where} "
                       "ORDER BY started_us DESC, run_id DESC LIMIT {n:UInt32}", p)
        for r in rows:
            yield r["run_id"]
        if len(rows) < n:
            return
        after = (rows[-1]["started_us"], rows[-1]["run_id"])
        if left is not None:
            left -= len(rows)


def formatter(req: ExportRequest) -> Callable[[dict[str, Any]], str]:
    """Pure: one run detail → one output line (with its newline)."""
    pseudo = Pseudonymizer(req.pseudonym_key) if req.pseudonym_key is not None else None

    def line(detail: dict[str, Any]) -> str:
        if pseudo is not None:
            detail = anonymize_detail(detail, pseudo)
        doc = run_to_otlp(detail) if req.fmt == "otlp" else detail
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"

    return line


def stream_export(db: Db, tenant: str, req: ExportRequest) -> Iterator[bytes]:
    line = formatter(req)
    for run_id in select_run_ids(db, tenant, req):
        detail = run_detail(db, tenant, run_id)
        if detail is not None:  # a run whose events aged out between the two reads
            yield line(detail).encode()
