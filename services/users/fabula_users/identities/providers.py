"""Talking to identity providers: discovery, the authorization URL (PKCE
S256), the code exchange (Authlib's httpx client), and the ID token's
verification (joserfc, the JOSE library that replaces the deprecated authlib.jose: issuer, audience, expiry,
nonce, and the signature against the provider's JWKS).

Every call has the configured deadline. Discovery documents and key sets are
cached for oidc_metadata_ttl_seconds; an ID token signed with a key the cache
does not know refreshes the key set once (the provider rotated its keys).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fabula_common.errors import NotFound, Unauthenticated, Unavailable
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fabula_users.identities.config import ProviderConfig
from fabula_users.settings import Settings

log = logging.getLogger(__name__)

# Asymmetric only: a token signed with the client secret (HS*) or unsigned
# ("none") is never accepted.
SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
# Clock difference tolerated between the provider and us.
CLOCK_LEEWAY_SECONDS = 60


class ProviderRefused(Unauthenticated):
    reason = "identity-provider-refused"


class InvalidIdToken(Unauthenticated):
    reason = "invalid-id-token"


@dataclass(frozen=True)
class ProviderProfile:
    """Who the provider says signed in."""

    subject: str
    email: str  # lower case; empty when the provider shared none
    email_verified: bool
    full_name: str


def _unreachable(name: str, exc: Exception) -> Unavailable:
    log.warning("identity provider %s unreachable: %r", name, exc)
    return Unavailable(f"the identity provider {name!r} did not answer; try again later")


class IdentityProviders:
    def __init__(self, settings: Settings) -> None:
        self.configs = settings.oidc_providers
        self.timeout = settings.oidc_timeout_seconds
        self.metadata_ttl = settings.oidc_metadata_ttl_seconds
        self._http = httpx2.AsyncClient(timeout=self.timeout, follow_redirects=False)
        self._cache: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        await self._http.aclose()

    def get(self, name: str) -> ProviderConfig:
        config = self.configs.get(name)
        if config is None:
            raise NotFound(f"identity provider {name!r} is not configured")
        return config

    # --- Metadata ---------------------------------------------------------------

    async def _cached(self, key: str, fetch, *, refresh: bool = False) -> Any:
        # One fetch at a time per key: a burst of sign-ins asks the provider once.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if (
                cached is not None
                and not refresh
                and time.monotonic() - cached[0] < self.metadata_ttl
            ):
                return cached[1]
            value = await fetch()
            self._cache[key] = (time.monotonic(), value)
            return value

    async def _get_json(self, name: str, url: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.get(url, **kwargs)
            response.raise_for_status()
            return response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise _unreachable(name, exc) from None

    async def metadata(self, name: str) -> dict[str, Any]:
        """The endpoints of the provider: its discovery document (OpenID
        Connect) or the configured URLs (plain OAuth 2)."""
        config = self.get(name)
        if not config.is_oidc:
            return {
                "authorization_endpoint": config.authorize_url,
                "token_endpoint": config.token_url,
                "userinfo_endpoint": config.userinfo_url,
            }
        issuer = (config.issuer or "").rstrip("/")

        async def fetch() -> dict[str, Any]:
            document = await self._get_json(name, f"{issuer}/.well-known/openid-configuration")
            # OpenID Connect Discovery 4.3: the document must be the issuer's own.
            if not isinstance(document, dict) or document.get("issuer") != config.issuer:
                raise _unreachable(name, ValueError("discovery document names another issuer"))
            return document

        return await self._cached(f"discovery:{name}", fetch)

    async def _key_set(self, name: str, jwks_uri: str, *, refresh: bool = False) -> KeySet:
        async def fetch() -> KeySet:
            document = await self._get_json(name, jwks_uri)
            try:
                return KeySet.import_key_set(document)
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise _unreachable(name, exc) from None

        return await self._cached(f"jwks:{name}", fetch, refresh=refresh)

    # --- The flow ---------------------------------------------------------------

    def _client(self, config: ProviderConfig, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            scope=config.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout,
        )

    async def authorization_url(
        self, name: str, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        config = self.get(name)
        metadata = await self.metadata(name)
        extra = {"nonce": nonce} if config.is_oidc else {}
        async with self._client(config, redirect_uri) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                code_verifier=code_verifier,
                **extra,
            )
        return url

    async def exchange(
        self, name: str, *, code: str, code_verifier: str, redirect_uri: str, nonce: str
    ) -> ProviderProfile:
        """Trade the code for tokens and say who signed in. ProviderRefused
        when the provider refuses the code, InvalidIdToken when its ID token
        does not verify."""
        config = self.get(name)
        metadata = await self.metadata(name)
        async with self._client(config, redirect_uri) as client:
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    code=code,
                    code_verifier=code_verifier,
                    grant_type="authorization_code",
                )
            except OAuthError as exc:
                raise ProviderRefused(
                    f"the identity provider refused the sign-in: {exc.error}"
                ) from None
            except (httpx2.HTTPError, ValueError) as exc:
                raise _unreachable(name, exc) from None
        if config.is_oidc:
            return await self._profile_from_id_token(name, config, metadata, token, nonce)
        return await self._profile_from_userinfo(name, config, token)

    async def _profile_from_id_token(
        self,
        name: str,
        config: ProviderConfig,
        metadata: dict[str, Any],
        token: dict[str, Any],
        nonce: str,
    ) -> ProviderProfile:
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise InvalidIdToken("the identity provider sent no ID token")
        claims = await self._verify_id_token(name, config, metadata, id_token, nonce)
        email, verified = claims.get("email"), claims.get("email_verified")
        if not email and metadata.get("userinfo_endpoint"):
            # Some providers put the email in userinfo only.
            info = await self._get_json(
                name,
                metadata["userinfo_endpoint"],
                headers={"Authorization": f"Bearer {token.get('access_token', '')}"},
            )
            if isinstance(info, dict) and info.get("sub") == claims["sub"]:
                email, verified = info.get("email"), info.get("email_verified")
        return ProviderProfile(
            subject=str(claims["sub"]),
            email=email.lower() if isinstance(email, str) else "",
            email_verified=verified is True,
            full_name=str(claims.get("name") or ""),
        )

    async def _verify_id_token(
        self,
        name: str,
        config: ProviderConfig,
        metadata: dict[str, Any],
        id_token: str,
        nonce: str,
    ) -> dict[str, Any]:
        jwks_uri = metadata.get("jwks_uri")
        if not jwks_uri:
            raise _unreachable(name, ValueError("discovery document has no jwks_uri"))
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in offered if alg in SIGNING_ALGORITHMS]
        keys = await self._key_set(name, jwks_uri)
        if _key_id(id_token) not in {key.kid for key in keys.keys}:
            keys = await self._key_set(name, jwks_uri, refresh=True)
        try:
            decoded = jwt.decode(id_token, keys, algorithms=algorithms)
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY_SECONDS,
                iss={"essential": True, "value": config.issuer},
                aud={"essential": True, "value": config.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            log.warning("ID token from %s refused: %r", name, exc)
            raise InvalidIdToken("the identity provider's ID token did not verify") from None
        claims = decoded.claims
        # OpenID Connect Core 3.1.3.7: with other audiences, we must be the authorized party.
        audience = claims["aud"]
        if (
            isinstance(audience, list)
            and len(audience) > 1
            and claims.get("azp") != config.client_id
        ):
            raise InvalidIdToken("the identity provider's ID token did not verify")
        return claims

    async def _profile_from_userinfo(
        self, name: str, config: ProviderConfig, token: dict[str, Any]
    ) -> ProviderProfile:
        headers = {
            "Authorization": f"Bearer {token.get('access_token', '')}",
            "Accept": "application/json",
        }
        info = await self._get_json(name, config.userinfo_url or "", headers=headers)
        subject = info.get(config.subject_field) if isinstance(info, dict) else None
        if subject in (None, ""):
            raise ProviderRefused("the identity provider did not say who signed in")
        email, verified = info.get("email"), info.get("email_verified") is True
        if config.emails_url:
            # GitHub: the profile's email is not said to be verified; the
            # list of addresses is. Take the primary one if verified.
            addresses = await self._get_json(name, config.emails_url, headers=headers)
            primary = [
                entry
                for entry in addresses
                if isinstance(addresses, list)
                if isinstance(entry, dict) and entry.get("primary")
            ]
            if primary:
                email, verified = primary[0].get("email"), primary[0].get("verified") is True
        return ProviderProfile(
            subject=str(subject),
            email=email.lower() if isinstance(email, str) else "",
            email_verified=verified,
            full_name=str(info.get("name") or ""),
        )


def _key_id(compact_jws: str) -> str | None:
    """The `kid` of a compact JWS's header (None when unreadable)."""
    try:
        header_segment = compact_jws.split(".", 1)[0]
        padded = header_segment + "=" * (-len(header_segment) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return None
    return header.get("kid") if isinstance(header, dict) else None
