"""Signed local-storage URLs: an HS256 JWT (PyJWT, as the access tokens)
naming the object, what may be sent and until when. Media signs and
verifies; the gateway only carries the token between client and media."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt
from fabula_common.errors import BadSignature, UrlExpired

ALGORITHM = "HS256"
UPLOAD = "fabula-media-upload"
DOWNLOAD = "fabula-media-download"


@dataclass(frozen=True)
class Grant:
    key: str
    content_type: str
    # Uploads: the most bytes that may be sent.
    max_bytes: int = 0


def sign(secret: str, audience: str, grant: Grant, expires_at: dt.datetime) -> str:
    claims = {
        "aud": audience,
        "exp": expires_at,
        "key": grant.key,
        "ct": grant.content_type,
        "max": grant.max_bytes,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, audience: str, token: str) -> Grant:
    """The grant of a token we signed for `audience`; BadSignature or UrlExpired."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["exp", "aud", "key"]},
        )
    except jwt.ExpiredSignatureError:
        raise UrlExpired("this link has expired; ask for a new one") from None
    except jwt.PyJWTError:
        raise BadSignature("this link is not valid") from None
    return Grant(str(claims["key"]), str(claims.get("ct", "")), int(claims.get("max", 0)))
