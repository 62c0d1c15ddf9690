"""Sealing a rotated refresh token's replacement so only its holder can open it.

During the grace window after a rotation, presenting the old token again must
give back the same replacement. The service stores the replacement encrypted
(AES-256-GCM) under a key derived (HKDF-SHA256) from the old token itself,
which the service never stores (only its SHA-256): the database alone, or
anyone without the old token, cannot open it.
"""

from __future__ import annotations

import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"fabula refresh-token replacement v1"
_NONCE_BYTES = 12


def _cipher(old_token: str, row_id: uuid.UUID) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=row_id.bytes, info=_INFO).derive(
        old_token.encode()
    )
    return AESGCM(key)


def seal_replacement(old_token: str, row_id: uuid.UUID, replacement: str) -> bytes:
    """`replacement` encrypted for whoever holds `old_token` (whose row is `row_id`)."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + _cipher(old_token, row_id).encrypt(nonce, replacement.encode(), row_id.bytes)


def open_replacement(old_token: str, row_id: uuid.UUID, sealed: bytes) -> str | None:
    """The replacement, or None when `old_token` is not the one it was sealed for."""
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        plain = _cipher(old_token, row_id).decrypt(nonce, ciphertext, row_id.bytes)
    except InvalidTag:
        return None
    return plain.decode()
