"""Who a request acts for: the users service's answer to Authenticate, cached.

Every authenticated request asks whether its account (or API key) may still
act. Asking users each time would put it on every request's path, so answers
are kept `ttl` seconds (deactivation and revocation take effect within it)
in a bounded table; a hit costs a dict lookup. Concurrent misses for one
credential share one call. When users cannot be reached, the last answer
known is used however old; without one the request gets 503. Asking again
about a credential already answered for waits at most
`RECHECK_TIMEOUT_SECONDS`: a users service that hangs (before its health
check or its callers' keepalive notice) then delays its users' requests by
that much rather than by a whole call deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

import grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc

from fabula_gateway.problems import problem_for_rpc_error

log = logging.getLogger(__name__)

# Every key CreateApiKey makes starts with this (an access token, a JWT, never does).
API_KEY_PREFIX = "fab_"
READ_METHODS = frozenset({"GET", "HEAD"})
# Authenticate is a lookup by key; an earlier answer stands when it is late.
RECHECK_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Principal:
    user_id: str
    # Empty for an access token: every scope.
    scopes: tuple[str, ...] = ()
    # Set when the request authenticated with an API key.
    api_key_id: str = ""
    is_superuser: bool = False
    # Under 13 by the profile's birthdate: every model call is child-safe.
    child_safe: bool = False

    def may(self, method: str) -> bool:
        """Whether the credential's scopes allow a request with this method."""
        return not self.scopes or method in READ_METHODS or "write" in self.scopes


@dataclass(frozen=True)
class Refused:
    """Users answered UNAUTHENTICATED (unknown, revoked, expired, deactivated)."""

    detail: str


Answer = Principal | Refused


class PrincipalCache:
    def __init__(self, *, ttl_seconds: float, max_entries: int) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        # credential key -> (monotonic time of the answer, answer); insertion
        # order is age order, so the first entry is the one to evict.
        self._entries: dict[str, tuple[float, Answer]] = {}
        # user id -> the API-key entries answering for that account, so that
        # forgetting an account finds them without a scan of the table.
        self._keys_of: dict[str, set[str]] = {}
        self._asking: dict[str, asyncio.Future[Answer]] = {}

    async def for_user(self, users: users_pb2_grpc.UsersServiceStub, user_id: str) -> Answer:
        return await self._answer(
            users, "u:" + user_id, users_pb2.AuthenticateRequest(user_id=user_id)
        )

    async def for_api_key(self, users: users_pb2_grpc.UsersServiceStub, key: str) -> Answer:
        # Kept by hash: the table holds no secrets.
        digest = hashlib.sha256(key.encode()).hexdigest()
        return await self._answer(users, "k:" + digest, users_pb2.AuthenticateRequest(api_key=key))

    async def _answer(
        self,
        users: users_pb2_grpc.UsersServiceStub,
        key: str,
        request: users_pb2.AuthenticateRequest,
    ) -> Answer:
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return entry[1]
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(users, key, request))
            self._asking[key] = asking
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        # Shielded: one caller going away does not cancel the others' answer.
        return await asyncio.shield(asking)

    async def _ask(
        self,
        users: users_pb2_grpc.UsersServiceStub,
        key: str,
        request: users_pb2.AuthenticateRequest,
    ) -> Answer:
        answer: Answer
        stale = self._entries.get(key)
        try:
            reply = await users.Authenticate(
                request, timeout=RECHECK_TIMEOUT_SECONDS if stale is not None else None
            )
            answer = Principal(
                user_id=reply.user_id,
                scopes=tuple(reply.scopes),
                api_key_id=reply.api_key_id,
                is_superuser=reply.is_superuser,
                child_safe=reply.child_safe,
            )
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code is grpc.StatusCode.UNAUTHENTICATED:
                answer = Refused(err.details() or "The credential is no longer valid.")
            else:
                if stale is not None and code in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    log.warning("users unavailable (%s): using an earlier answer", code.name)
                    return stale[1]
                raise problem_for_rpc_error(err) from None
        self._store(key, answer)
        return answer

    def remember_user(self, principal: Principal) -> None:
        """Take an access token's account as users' answer (e.g. a test's app
        whose users service is not running)."""
        self._store("u:" + principal.user_id, principal)

    def forget_account(self, user_id: str) -> None:
        """Drop every answer about the account, its access tokens' and its API
        keys', after this gateway changed what users would answer: a deletion,
        a deactivation, a superuser change, a revoked key or a new birthdate
        (child-safe) is then seen on the next request, not after the TTL; a
        login or refresh (users has just vouched for it) does not stay refused
        by an answer from before a reactivation."""
        self._drop("u:" + user_id)
        for key in list(self._keys_of.get(user_id, ())):
            self._drop(key)

    def _store(self, key: str, answer: Answer) -> None:
        self._drop(key)
        self._entries[key] = (time.monotonic(), answer)
        if key.startswith("k:") and isinstance(answer, Principal):
            self._keys_of.setdefault(answer.user_id, set()).add(key)
        if len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and key.startswith("k:") and isinstance(entry[1], Principal):
            keys = self._keys_of[entry[1].user_id]
            keys.discard(key)
            if not keys:
                del self._keys_of[entry[1].user_id]

    def __len__(self) -> int:
        return len(self._entries)
