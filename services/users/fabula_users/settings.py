"""Configuration of the users service (USERS_* variables, plus the common ones)."""

from __future__ import annotations

import os

from fabula_common.settings import ServiceSettings, TokenSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

# argon2-cffi's defaults (RFC 9106, low-memory profile).
DEFAULT_ARGON2_TIME_COST = 3
DEFAULT_ARGON2_MEMORY_COST_KIB = 65536
DEFAULT_ARGON2_PARALLELISM = 4


class Settings(ServiceSettings, TokenSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_")

    database_url: str = "postgresql://fabula_users:fabula_users@127.0.0.1:5432/fabula"
    grpc_port: int = 50051

    refresh_token_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)
    # Expired refresh tokens are deleted this long after expiry; until then a
    # replayed one is still recognised (and rejected) as known.
    refresh_token_retention_seconds: int = Field(7 * 24 * 3600, ge=0)
    refresh_token_purge_interval_seconds: float = Field(3600.0, gt=0)

    # Changing these makes every stored hash re-hashed at its owner's next login.
    argon2_time_cost: int = Field(DEFAULT_ARGON2_TIME_COST, ge=1)
    argon2_memory_cost_kib: int = Field(DEFAULT_ARGON2_MEMORY_COST_KIB, ge=8)
    argon2_parallelism: int = Field(DEFAULT_ARGON2_PARALLELISM, ge=1)
    # Each hash holds argon2_memory_cost_kib of memory: this bounds how many
    # run at once (and so the process's memory), queueing the rest.
    password_hash_workers: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    # Hashes that may wait for a worker; a login or registration beyond them
    # is refused at once (UNAVAILABLE, reason too-busy, with a retry delay).
    # Keep queue / workers x one hash's time well under the callers' deadline.
    password_hash_queue: int = Field(16, ge=0)

    # A refresh token presented again this soon after its rotation gets the
    # same new refresh token (two tabs, or a retry after a lost answer) instead
    # of being taken for a stolen copy, which revokes its family. 0 disables.
    refresh_reuse_grace_seconds: float = Field(10.0, ge=0)

    # Deleting the account needs no password when the caller's access token
    # was issued this recently (a fresh sign-in).
    fresh_sign_in_seconds: int = Field(300, ge=0)
