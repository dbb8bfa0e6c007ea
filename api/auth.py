"""Who is calling: every ``/v1`` route needs an API key (access/keys.py), and its role must allow the route.

The key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. A missing key is a 401
``missing_api_key``; an unknown, malformed or revoked one a 401 ``invalid_api_key``; a key whose
role lacks the route's permission a 403 ``forbidden_role``; a key over its rate a 429
``rate_limited`` with ``Retry-After``. Routes take the caller with ``require(permission)``::

    @router.get("/v1/escalations")
    async def list_escalations(caller: Annotated[Caller, Depends(require(Permission.ESCALATIONS))]): ...

The caller's tenant and audience come only from its key, never from the request (``Caller.scope``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, NoReturn

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from access.keys import ROLE_PERMISSIONS, ApiKey, KeyStore, Permission, Role
from api.errors import AuthenticationError, ForbiddenError, NotReadyError, RateLimitedError
from api.limits import RateLimiter, retry_after_header
from retrieval.scope import AUDIENCES, INTERNAL, PUBLIC, Scope

# auto_error=False: a missing key is our own 401 JSON, not FastAPI's 403 text. Both schemes appear
# in the OpenAPI schema, so /docs offers an "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key (instead of Bearer).")


@dataclass(frozen=True)
class Caller:
    """The authenticated key behind a request."""

    key_id: str
    role: Role
    tenant: str
    audience: str  # public or internal

    @classmethod
    def of(cls, key: ApiKey) -> Caller:
        return cls(key_id=key.key_id, role=Role(key.role), tenant=key.tenant, audience=key.audience)

    @property
    def scope(self) -> Scope:
        """What retrieval may return to this caller: its tenant; public documents, and internal
        ones too for an internal key."""
        audiences = frozenset(AUDIENCES) if self.audience == INTERNAL else frozenset({PUBLIC})
        return Scope(tenant=self.tenant, audiences=audiences)

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def get_key_store(request: Request) -> KeyStore:
    store: KeyStore | None = getattr(request.app.state, "keys", None)
    if store is None:
        raise NotReadyError("the API is still starting")
    return store


def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Caller:
    """The caller of this request (401 without a valid key, 429 over its rate)."""
    token = bearer.credentials if bearer is not None else api_key
    if not token:
        raise AuthenticationError(
            "this endpoint needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            "missing_api_key",
        )
    # Failed authentications are limited per client address, checked before the key is: an address
    # that keeps guessing is refused without its guesses being tried.
    failures: RateLimiter = request.app.state.auth_failure_limiter
    address = request.client.host if request.client else "unknown"
    if (wait := failures.waiting(address)) > 0:
        _refuse("too many failed authentications from this address", wait)
    key = await run_in_threadpool(get_key_store(request).authenticate, token.strip())
    if key is None:
        failures.retry_after(address)  # counts the failure
        raise AuthenticationError("the API key is unknown or revoked", "invalid_api_key")
    caller = Caller.of(key)
    request.state.caller = caller  # the access log (api/access_log.py) names the key of every request
    if (wait := get_rate_limiter(request).retry_after(key.key_id)) > 0:
        _refuse("too many requests for this API key", wait)
    return caller


def _refuse(reason: str, wait: float) -> NoReturn:
    """A 429 whose message and Retry-After name the same whole number of seconds."""
    seconds = retry_after_header(wait)
    raise RateLimitedError(f"{reason}; retry in {seconds} s", seconds)


def require(permission: Permission) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency that lets through only callers whose role grants ``permission``."""

    async def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not caller.may(permission):
            needs = permission.value
            raise ForbiddenError(f"role {caller.role.value!r} may not use this endpoint (it needs {needs!r})")
        return caller

    return check


AskCaller = Annotated[Caller, Depends(require(Permission.ASK))]
FeedbackCaller = Annotated[Caller, Depends(require(Permission.FEEDBACK))]
DocumentsCaller = Annotated[Caller, Depends(require(Permission.DOCUMENTS))]
JobsCaller = Annotated[Caller, Depends(require(Permission.JOBS))]
EscalationsCaller = Annotated[Caller, Depends(require(Permission.ESCALATIONS))]
ConversationsCaller = Annotated[Caller, Depends(require(Permission.CONVERSATIONS))]
FaqCaller = Annotated[Caller, Depends(require(Permission.FAQ_CANDIDATES))]
KeysCaller = Annotated[Caller, Depends(require(Permission.KEYS))]
ErasureCaller = Annotated[Caller, Depends(require(Permission.ERASURE))]
