"""gRPC edge of sign-in with identity providers: one transaction per step,
none held across a call to a provider."""

from __future__ import annotations

import grpc
from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database

from fabula_users.accounts.servicer import token_response
from fabula_users.identities.models import Identity
from fabula_users.identities.service import IdentitiesService


def identity_to_proto(identity: Identity) -> users_pb2.Identity:
    return users_pb2.Identity(
        id=str(identity.id),
        provider=identity.provider,
        subject=identity.subject,
        email=identity.email,
        created_at=identity.created_at,
    )


class IdentitiesServicer(users_pb2_grpc.UsersServiceServicer):
    def __init__(self, db: Database, identities: IdentitiesService) -> None:
        self.db = db
        self.identities = identities

    async def ListIdentityProviders(
        self, request: users_pb2.ListIdentityProvidersRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.ListIdentityProvidersResponse:
        return users_pb2.ListIdentityProvidersResponse(
            providers=[
                users_pb2.IdentityProvider(name=name, display_name=config.display_name or name)
                for name, config in sorted(self.identities.providers.configs.items())
            ]
        )

    async def StartIdentitySignIn(
        self, request: users_pb2.StartIdentitySignInRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.StartIdentitySignInResponse:
        url, pending, state = await self.identities.begin(request.provider, request.redirect_uri)
        async with self.db.session_scope() as session:
            await self.identities.remember(session, pending)
        return users_pb2.StartIdentitySignInResponse(authorization_url=url, state=state)

    async def CompleteIdentitySignIn(
        self, request: users_pb2.CompleteIdentitySignInRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.TokenResponse:
        # Taken in a transaction of its own: used up even if what follows fails.
        async with self.db.session_scope() as session:
            taken = await self.identities.take(session, request.state)
        pending = self.identities.check_taken(taken, request.provider, request.redirect_uri)
        profile = await self.identities.identify(pending, request.code)
        async with self.db.session_scope() as session:
            issued = await self.identities.sign_in(session, pending.provider, profile)
        return token_response(issued)

    async def ListIdentities(
        self, request: users_pb2.ListIdentitiesRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.ListIdentitiesResponse:
        async with self.db.session_scope() as session:
            identities = await self.identities.list_identities(session, request.user_id)
            return users_pb2.ListIdentitiesResponse(
                identities=[identity_to_proto(identity) for identity in identities]
            )

    async def UnlinkIdentity(
        self, request: users_pb2.UnlinkIdentityRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.UnlinkIdentityResponse:
        async with self.db.session_scope() as session:
            await self.identities.unlink(session, request.user_id, request.identity_id)
        return users_pb2.UnlinkIdentityResponse()
