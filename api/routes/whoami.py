"""GET /v1/whoami: the tenant and scopes of the calling key (what a CLI or a script needs to say
whose data it shows, and which commands it may run), and nothing about other keys."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ..auth import Principal
from ..deps import principal
from ..errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/whoami", tags=["auth"], responses=ERROR_RESPONSES)


class WhoAmI(BaseModel):
    tenant_id: str
    key_name: str
    scopes: list[str]


@router.get("", response_model=WhoAmI, summary="The calling key's tenant, name and scopes")
async def whoami(who: Principal = Depends(principal)) -> WhoAmI:
    return WhoAmI(tenant_id=who.tenant_id, key_name=who.name, scopes=sorted(who.scopes))
