"""Sign-in with identity providers and the identities linked to accounts.

Completing a sign-in decides which account it is, in this order: the account
the identity is linked to; else the account whose email the provider says it
has VERIFIED (the identity is linked to it); else a new account without a
password. An unverified provider email never links to an existing account:
whoever controls the provider account could claim any address.

Methods take the caller's session and never commit; the edge owns the
transaction. No transaction is held across a call to a provider.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid
from urllib.parse import urlsplit

from fabula_common.db import utcnow
from fabula_common.errors import (
    Aborted,
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts import repository as accounts
from fabula_users.accounts.models import User
from fabula_users.accounts.service import IssuedTokens, UsersService, normalise_email
from fabula_users.identities import repository
from fabula_users.identities.models import REDIRECT_URI_MAX_LENGTH, Identity, PendingSignIn
from fabula_users.identities.providers import IdentityProviders, ProviderProfile
from fabula_users.settings import Settings

log = logging.getLogger(__name__)

STATE_BYTES = 32
NONCE_BYTES = 32
# 86 characters: RFC 7636 asks for 43 to 128.
CODE_VERIFIER_BYTES = 64


class InvalidState(InvalidArgument):
    reason = "invalid-state"


class LastSignInMethod(Conflict):
    reason = "last-sign-in-method"


class EmailRequired(Conflict):
    reason = "email-required"


class UnverifiedEmailTaken(AlreadyExists):
    reason = "email-taken"


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _invalid_state() -> InvalidState:
    return InvalidState("state: unknown, already used or expired; start the sign-in again")


def check_redirect_uri(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.fragment
        or len(redirect_uri) > REDIRECT_URI_MAX_LENGTH
    ):
        raise InvalidArgument(
            f"redirect_uri: must be an absolute http(s) URL without a fragment, at most "
            f"{REDIRECT_URI_MAX_LENGTH} characters"
        )
    return redirect_uri


class IdentitiesService:
    def __init__(
        self, settings: Settings, providers: IdentityProviders, accounts_service: UsersService
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.accounts = accounts_service

    # --- Starting ---------------------------------------------------------------

    async def begin(self, provider: str, redirect_uri: str) -> tuple[str, PendingSignIn, str]:
        """The provider's authorization URL, the sign-in to remember, and its
        state (only its hash is stored)."""
        self.providers.get(provider)
        redirect_uri = check_redirect_uri(redirect_uri)
        state = secrets.token_urlsafe(STATE_BYTES)
        pending = PendingSignIn(
            state_hash=hash_state(state),
            provider=provider,
            nonce=secrets.token_urlsafe(NONCE_BYTES),
            code_verifier=secrets.token_urlsafe(CODE_VERIFIER_BYTES),
            redirect_uri=redirect_uri,
            expires_at=utcnow() + dt.timedelta(seconds=self.settings.oidc_state_ttl_seconds),
        )
        url = await self.providers.authorization_url(
            provider,
            redirect_uri=redirect_uri,
            state=state,
            nonce=pending.nonce,
            code_verifier=pending.code_verifier,
        )
        return url, pending, state

    async def remember(self, session: AsyncSession, pending: PendingSignIn) -> None:
        # Expired ones go here: each start clears what abandoned ones left.
        await repository.delete_pending_sign_ins_expired_before(session, utcnow())
        await repository.add_pending_sign_in(session, pending)

    # --- Completing -------------------------------------------------------------

    async def take(self, session: AsyncSession, state: str) -> PendingSignIn | None:
        """Consume the sign-in the state names (whatever happens next, the
        state cannot be used again)."""
        if not state:
            return None
        return await repository.take_pending_sign_in(session, hash_state(state))

    def check_taken(
        self, pending: PendingSignIn | None, provider: str, redirect_uri: str
    ) -> PendingSignIn:
        if (
            pending is None
            or pending.expires_at <= utcnow()
            or not hmac.compare_digest(pending.provider, provider)
            or (redirect_uri and redirect_uri != pending.redirect_uri)
        ):
            raise _invalid_state()
        return pending

    async def identify(self, pending: PendingSignIn, code: str) -> ProviderProfile:
        if not code:
            raise InvalidArgument("code: required")
        return await self.providers.exchange(
            pending.provider,
            code=code,
            code_verifier=pending.code_verifier,
            redirect_uri=pending.redirect_uri,
            nonce=pending.nonce,
        )

    async def sign_in(
        self, session: AsyncSession, provider: str, profile: ProviderProfile
    ) -> IssuedTokens:
        identity = await repository.get_identity(session, provider, profile.subject)
        if identity is not None:
            user = await accounts.get_user(session, identity.user_id)
            if user is None:  # the foreign key cascades: only a race with a deletion
                raise Aborted("the account was deleted meanwhile; sign in again")
            if profile.email and identity.email != profile.email:
                identity.email = profile.email
        else:
            user = await self._account_for(session, profile)
            linked = await repository.add_identity(
                session,
                user_id=user.id,
                provider=provider,
                subject=profile.subject,
                email=profile.email,
            )
            if linked is None:
                # A concurrent first sign-in of the same identity won; what
                # this one made is rolled back.
                raise Aborted("a sign-in with this identity happened at the same time; retry")
            log.info("identity %s of %s linked to user %s", linked.id, provider, user.id)
        return await self.accounts.issue_for_login(session, user, None)

    async def _account_for(self, session: AsyncSession, profile: ProviderProfile) -> User:
        try:
            email = normalise_email(profile.email) if profile.email else ""
        except InvalidArgument:
            email = ""
        if not email:
            raise EmailRequired(
                "the identity provider shared no email address; allow it to, then sign in again"
            )
        existing = await accounts.get_user_by_email(session, email)
        if existing is not None:
            if not profile.email_verified:
                raise UnverifiedEmailTaken(
                    "an account with this email exists, and the identity provider has not "
                    "verified the address: sign in with the password instead"
                )
            # The provider proved the address: so is it proved here.
            existing.is_verified = True
            return existing
        user = await repository.create_passwordless_user(
            session,
            email=email,
            full_name=profile.full_name[:200],
            is_verified=profile.email_verified,
        )
        if user is None:
            raise Aborted("an account with this email was created at the same time; retry")
        await self.accounts.announce_registration(session, user)
        return user

    # --- Linked identities --------------------------------------------------------

    async def list_identities(self, session: AsyncSession, user_id: str) -> list[Identity]:
        user = await self.accounts.get_user(session, user_id)
        return await repository.list_identities(session, user.id)

    async def unlink(self, session: AsyncSession, user_id: str, identity_id: str) -> None:
        user = await self.accounts.get_user(session, user_id)
        user = await repository.get_user_for_update(session, user.id)
        try:
            identity = await session.get(Identity, uuid.UUID(identity_id))
        except ValueError:
            identity = None
        if user is None or identity is None or identity.user_id != user.id:
            raise NotFound("identity not found")
        if user.password_hash is None and await repository.count_identities(session, user.id) <= 1:
            raise LastSignInMethod(
                "this identity is the account's only way to sign in: set a password or link "
                "another identity first"
            )
        await repository.delete_identity(session, identity)
