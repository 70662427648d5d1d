"""API keys of the caller's tenant, for its admins: create (the secret is shown once), list, revoke.
And `/v1/me`: who the caller's key says they are."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, status

from api.auth import Admin, Caller
from api.deps import State
from api.errors import AUTHENTICATED, responses
from api.schemas import KeyCreated, KeyIn, KeyList, KeyOut, MeOut
from api.validation import PathId
from keel.core.identity import parse_roles
from keel.stores.keys import KEY_ID, KeyNotFoundError, KeyRecord

router = APIRouter(tags=["keys"], responses=responses(*AUTHENTICATED))


def _view(record: KeyRecord) -> KeyOut:
    return KeyOut(
        id=record.key_id,
        tenant=record.tenant,
        name=record.name,
        roles=record.roles,
        created_at=record.created_at,
        revoked_at=record.revoked_at or None,
    )


@router.get("/v1/me", response_model=MeOut)
async def me(caller: Caller) -> MeOut:
    """The tenant, name and roles of the key this request carries."""
    return MeOut(tenant=caller.tenant, name=caller.name, roles=sorted(caller.roles), key_id=caller.key_id)


@router.post("/v1/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(body: KeyIn, caller: Admin, state: State) -> KeyCreated:
    """A new key in the caller's tenant. Its secret is in this answer only: store it now."""
    try:
        roles = parse_roles(body.roles)
        record, secret = await asyncio.to_thread(state.keys.create, caller.tenant, body.name, roles)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    return KeyCreated(**_view(record).model_dump(), key=secret)


@router.get("/v1/keys", response_model=KeyList)
async def list_keys(caller: Admin, state: State) -> KeyList:
    """The tenant's keys, revoked ones too, oldest first; never a secret."""
    records = await asyncio.to_thread(state.keys.list, caller.tenant)
    return KeyList(keys=[_view(record) for record in records])


@router.delete("/v1/keys/{key_id}", response_model=KeyOut, responses=responses(404))
async def revoke_key(key_id: PathId, caller: Admin, state: State) -> KeyOut:
    """Revoke a key of the tenant: it stops working at once, sign-in sessions made with it too."""
    try:
        if not KEY_ID.match(key_id):
            raise KeyNotFoundError(key_id)
        record = await asyncio.to_thread(state.keys.revoke, key_id, caller.tenant)
    except KeyNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key with id {key_id!r}") from None
    return _view(record)
