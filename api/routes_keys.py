"""Key management for admins: list, create and revoke the API keys of the admin's own tenant.

The same as ``answerdesk keys`` (answerdesk/keys_cli.py), but an admin key can only manage keys of
its tenant; another tenant's key id is "no key", exactly like an unknown one. A key grants only what
it has: a public admin creates public keys only (403 ``audience_not_allowed`` for an internal one),
and neither lists nor revokes internal keys (they are "no key" to it). The command line keeps every
power, for operators.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from access.keys import ApiKey, KeyStore
from api.auth import KeysCaller, get_key_store
from api.errors import AudienceForbiddenError
from api.models import ErrorResponse

router = APIRouter(tags=["keys"])
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or an unknown or revoked one."},
    403: {
        "model": ErrorResponse,
        "description": "Only admin keys manage keys (`forbidden_role`); an internal key needs an internal admin "
        "(`audience_not_allowed`).",
    },
    404: {"model": ErrorResponse, "description": "No such key in this tenant."},
    422: {"model": ErrorResponse, "description": "The request is invalid; the body names the field."},
    429: {"model": ErrorResponse, "description": "Too many requests for this key; see Retry-After."},
}


class KeyView(BaseModel):
    """A key without its secret."""

    key_id: str
    name: str
    role: Literal["reader", "editor", "agent", "admin"]
    tenant: str
    audience: Literal["public", "internal"]
    created_at: str
    revoked_at: str | None = None

    @classmethod
    def of(cls, key: ApiKey) -> KeyView:
        return cls.model_validate(key, from_attributes=True)


class KeyList(BaseModel):
    keys: list[KeyView]


class KeyRequest(BaseModel):
    """A new key for the caller's own tenant."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "reader", "name": "widget"}]})

    role: Literal["reader", "editor", "agent", "admin"]
    audience: Literal["public", "internal"] = "public"
    name: str = Field(default="", max_length=100, description="What the key is for.")


class CreatedKey(KeyView):
    key: str = Field(description="The API key itself: shown only in this response, never stored.")


@router.get("/v1/keys", response_model=KeyList, responses=_ERRORS)
async def list_keys(caller: KeysCaller, store: KeyStoreDep) -> KeyList:
    """The tenant's keys, oldest first, revoked ones included (never a secret)."""
    keys = await run_in_threadpool(store.keys, caller.tenant)
    return KeyList(keys=[KeyView.of(key) for key in keys if key.audience in caller.scope.audiences])


@router.post("/v1/keys", status_code=201, response_model=CreatedKey, responses=_ERRORS)
async def create_key(body: KeyRequest, caller: KeysCaller, store: KeyStoreDep) -> CreatedKey:
    """Create a key in the caller's tenant and of an audience the caller has; the response is the only
    place its secret appears."""
    if body.audience not in caller.scope.audiences:
        raise AudienceForbiddenError(f"a {caller.audience} key may not create {body.audience} keys")
    key, token = await run_in_threadpool(store.create, body.role, caller.tenant, body.audience, body.name)
    return CreatedKey(**KeyView.of(key).model_dump(), key=token)


@router.delete("/v1/keys/{key_id}", response_model=KeyView, responses=_ERRORS)
async def revoke_key(
    key_id: Annotated[str, Path(max_length=64)], caller: KeysCaller, store: KeyStoreDep
) -> KeyView:
    """Revoke a key of the tenant: its next request gets 401 (revoking twice changes nothing)."""
    key = await run_in_threadpool(store.revoke, key_id, caller.tenant, caller.scope.audiences)
    return KeyView.of(key)

