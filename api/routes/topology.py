"""GET /v1/runs/{run_id}/topology: the run's multi-agent tree (runs, agents, handoffs)."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..auth import Principal
from ..db import Db
from ..deps import get_db, require_read
from ..errors import ERROR_RESPONSES, not_found
from ..store.topology import run_topology
from .runs import RUN_ID

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=ERROR_RESPONSES)


class TopologyRun(BaseModel):
    run_id: str
    agent_id: str
    status: str = Field(description="a run status, RUNNING, or NOT_STORED for a handoff target never seen")
    parent_run_id: str | None = None
    started_us: int | None = None
    duration_ms: float | None = None
    cost_usd: float
    step_count: int
    stored: bool
    depth: int = Field(description="handoffs below the tree's highest stored run")
    reappearance: int = Field(description="times this run's agent appears among its ancestors")


class Handoff(BaseModel):
    from_run_id: str
    to_run_id: str
    to_agent_id: str
    seq: int | None = Field(None, description="the HANDOFF step's seq in from_run_id (null: parent_run_id only)")
    via: str = Field(description="handoff (a HANDOFF step) or parent_run_id (the child's link alone)")


class AgentSummary(BaseModel):
    agent_id: str
    runs: int
    handoffs_out: int


class Loop(BaseModel):
    run_id: str
    agent_id: str
    reappearances: int
    path: str


class Topology(BaseModel):
    run_id: str
    root_run_id: str
    truncated: bool = Field(description="more than 500 runs or 32 levels: the rest is left out")
    nodes: list[TopologyRun]
    edges: list[Handoff]
    agents: list[AgentSummary]
    loops: list[Loop] = Field(description="runs whose agent reappears more than once in its own ancestry")


@router.get("/{run_id:path}/topology", response_model=Topology, summary="Multi-agent topology of a run",
            description="Every stored run of the run's handoff tree: up to its root through parent_run_id, "
                        "then down; edges from HANDOFF steps and parent links; per-agent counts; loops.")
def get_topology(run_id: str = RUN_ID, who: Principal = Depends(require_read),
                 db: Db = Depends(get_db)) -> Topology:
    t = run_topology(db, who.tenant_id, run_id)
    if t is None:
        raise not_found("run", run_id)
    return Topology(**t)
