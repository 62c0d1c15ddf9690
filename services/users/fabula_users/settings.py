"""Configuration of the users service (USERS_* variables, plus the common ones)."""

from __future__ import annotations

import os
from enum import StrEnum

from fabula_common.settings import ServiceSettings, TokenSettings, env
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from fabula_users.identities.config import ProviderConfig

# argon2-cffi's defaults (RFC 9106, low-memory profile).
DEFAULT_ARGON2_TIME_COST = 3
DEFAULT_ARGON2_MEMORY_COST_KIB = 65536
DEFAULT_ARGON2_PARALLELISM = 4


class SmtpTls(StrEnum):
    none = "none"
    starttls = "starttls"
    tls = "tls"


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

    # Identity providers for sign-in (identities.providers.ProviderConfig),
    # a JSON object by name: {"google": {"issuer": ..., "client_id": ...,
    # "client_secret": ...}, "github": {"authorize_url": ..., ...}}.
    oidc_providers: dict[str, ProviderConfig] = Field(
        default_factory=dict, validation_alias="USERS_OIDC_PROVIDERS_JSON"
    )
    # Deadline of each call to a provider (discovery, JWKS, token, userinfo).
    oidc_timeout_seconds: float = Field(5.0, gt=0)
    # How long a discovery document and JWKS are reused before being fetched again.
    oidc_metadata_ttl_seconds: float = Field(3600.0, ge=0)
    # How long a started sign-in (its state) may take to come back.
    oidc_state_ttl_seconds: int = Field(600, ge=30)
    # --- Emailed tokens -------------------------------------------------------
    email_verification_ttl_seconds: int = Field(48 * 3600, ge=60)
    password_reset_ttl_seconds: int = Field(3600, ge=60)

    # --- Login throttling ---------------------------------------------------------
    # From this many consecutive failures (of one account, within the window
    # since the last one) every login of it is refused with 429 until the
    # window has passed, the right password too.
    login_max_failures: int = Field(10, ge=1)
    login_failure_window_seconds: float = Field(15 * 60.0, gt=0)
    # The same per client address (higher: many people may share one).
    login_max_failures_per_address: int = Field(50, ge=1)
    # Before that, a failed login's answer is delayed: this much after the
    # third consecutive failure, doubling with each further one, at most 4x.
    login_failure_delay_seconds: float = Field(0.5, ge=0)

    # --- Mail -------------------------------------------------------------------
    # Links in emails point here (the app's web front end).
    app_base_url: str = env("APP_BASE_URL", "http://127.0.0.1:8000")
    mail_from: str = env("MAIL_FROM", "Fabula <no-reply@fabula.local>")
    # Without SMTP_HOST each message is written as an .eml file into MAIL_DIR.
    smtp_host: str = env("SMTP_HOST", "")
    smtp_port: int = env("SMTP_PORT", 587, ge=1, le=65535)
    smtp_username: str = env("SMTP_USERNAME", "")
    smtp_password: SecretStr = env("SMTP_PASSWORD", SecretStr(""))
    smtp_tls: SmtpTls = env("SMTP_TLS", SmtpTls.starttls)
    mail_dir: str = env("MAIL_DIR", ".fabula/mail")
    # Deadline of one delivery (connect, TLS, send).
    mail_send_timeout_seconds: float = Field(15.0, gt=0)
    # A message that failed this often is given up on (logged, its text cleared).
    mail_max_attempts: int = Field(8, ge=1)
    # Delay after the first failure; doubled after each further one, up to the max.
    mail_retry_base_seconds: float = Field(5.0, gt=0)
    mail_retry_max_seconds: float = Field(600.0, gt=0)
    mail_poll_seconds: float = Field(2.0, gt=0)
    # Deleting the account needs no password when the caller's access token
    # was issued this recently (a fresh sign-in).
    fresh_sign_in_seconds: int = Field(300, ge=0)
