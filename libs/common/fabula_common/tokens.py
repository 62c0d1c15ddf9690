"""Access tokens: short-lived HS256 JWTs issued by the users service and
verified by the gateway without a network call."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import jwt

from fabula_common.errors import Unauthenticated
from fabula_common.settings import TokenSettings

AUDIENCE = "fabula-api"
ALGORITHM = "HS256"
# Clock skew tolerated on `exp`, `nbf` and `iat`.
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    expires_at: dt.datetime
    # When the token was issued: a sign-in (or refresh) that recent.
    issued_at: dt.datetime


def issue_access_token(settings: TokenSettings, user_id: str) -> tuple[str, int]:
    now = dt.datetime.now(dt.UTC)
    ttl = settings.access_token_ttl_seconds
    claims = {
        "sub": user_id,
        "iss": settings.jwt_issuer,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)
    return token, ttl


def verify_access_token(settings: TokenSettings, token: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "sub", "iat"]},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("access token expired") from None
    except jwt.PyJWTError:
        raise Unauthenticated("invalid access token") from None
    if claims.get("typ") != "access":
        raise Unauthenticated("invalid access token")
    return AccessClaims(
        user_id=str(claims["sub"]),
        expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
        issued_at=dt.datetime.fromtimestamp(claims["iat"], dt.UTC),
    )


class VerifiedTokens:
    """`verify_access_token` that remembers the tokens it found valid until
    they expire: a client sends the same token with every request, and the
    signature, JSON and claims checks are most of the gateway's CPU for a read.
    Only valid tokens are kept, so an invalid one costs its check every time;
    at most `max_size` (the oldest go first)."""

    def __init__(self, settings: TokenSettings, max_size: int = 10_000) -> None:
        self.settings = settings
        self.max_size = max_size
        self._valid: dict[str, AccessClaims] = {}

    def verify(self, token: str) -> AccessClaims:
        claims = self._valid.get(token)
        if claims is not None:
            if dt.datetime.now(dt.UTC) < claims.expires_at + _LEEWAY:
                return claims
            del self._valid[token]
        claims = verify_access_token(self.settings, token)
        if len(self._valid) >= self.max_size:
            del self._valid[next(iter(self._valid))]
        self._valid[token] = claims
        return claims


_LEEWAY = dt.timedelta(seconds=LEEWAY_SECONDS)
