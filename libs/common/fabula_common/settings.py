"""Configuration from the environment only (pydantic-settings).

Variables shared by every process carry no prefix (NATS_URL, FABULA_ENV, ...);
a service's own variables carry its name (USERS_DATABASE_URL, USERS_GRPC_PORT).
Common fields therefore name their variable explicitly with `env(...)`, and a
service's settings class sets `env_prefix` for the rest.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fabula_common.grpc_client import SERVER_KEEPALIVE_OPTIONS

DEFAULT_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


def env(name: str, default: Any = ..., **kwargs: Any) -> Any:
    """A field read from exactly the environment variable `name`."""
    return Field(default, validation_alias=name, **kwargs)


class CommonSettings(BaseSettings):
    """What every Fabula process reads, the gateway included."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, validate_default=True)

    environment: Environment = env("FABULA_ENV", Environment.development)
    log_level: str = env("LOG_LEVEL", "INFO")
    log_format: str = env("LOG_FORMAT", "json", pattern="^(json|text)$")
    # Access lines (one per REST request, one per gRPC call) are DEBUG when
    # the request succeeded or was refused, INFO when it failed (5xx, a
    # server-side gRPC status): a line per request costs a busy process
    # dearly. Level of the access loggers; unset = LOG_LEVEL, DEBUG = every request.
    access_log_level: str | None = env(
        "ACCESS_LOG_LEVEL", None, pattern="^(?i:DEBUG|INFO|WARNING|ERROR|CRITICAL)$"
    )

    nats_url: str = env("NATS_URL", "nats://127.0.0.1:4222")
    nats_stream: str = env("NATS_STREAM", "FABULA")
    nats_subject_prefix: str = env("NATS_SUBJECT_PREFIX", "fabula")
    nats_timeout_seconds: float = env("NATS_TIMEOUT_SECONDS", 2.0, gt=0)
    # Limits of the stream, applied on creation and to an existing stream that
    # differs: events (dead letters too) are kept this long, at most this many
    # bytes (-1: no limit; when full the oldest go first), on this many servers.
    nats_stream_max_age_seconds: float = env("NATS_STREAM_MAX_AGE_SECONDS", 14 * 86400.0, gt=0)
    nats_stream_max_bytes: int = env("NATS_STREAM_MAX_BYTES", -1, ge=-1)
    nats_stream_replicas: int = env("NATS_STREAM_REPLICAS", 1, ge=1, le=5)
    # A consumer tries a message this many times, waiting longer each time
    # (base * 2^(n-1), at most max), then moves it to its dead-letter subject.
    consumer_max_deliver: int = env("CONSUMER_MAX_DELIVER", 10, ge=1)
    consumer_retry_base_seconds: float = env("CONSUMER_RETRY_BASE_SECONDS", 2.0, gt=0)
    consumer_retry_max_seconds: float = env("CONSUMER_RETRY_MAX_SECONDS", 300.0, gt=0)

    users_addr: str = env("USERS_ADDR", "127.0.0.1:50051")
    stories_addr: str = env("STORIES_ADDR", "127.0.0.1:50052")
    generation_addr: str = env("GENERATION_ADDR", "127.0.0.1:50053")
    billing_addr: str = env("BILLING_ADDR", "127.0.0.1:50054")
    media_addr: str = env("MEDIA_ADDR", "127.0.0.1:50055")
    # Default deadline of an outbound gRPC call; an incoming deadline that is
    # sooner always wins.
    grpc_deadline_seconds: float = env("GRPC_DEADLINE_SECONDS", 10.0, gt=0)
    # Model calls stream for longer than ordinary calls.
    generation_deadline_seconds: float = env("GENERATION_DEADLINE_SECONDS", 120.0, gt=0)
    # A whole council message (three stages of model calls, each call under
    # GENERATION_DEADLINE_SECONDS): stories' call to generation, and the
    # gateway's to stories (which adds GRPC_DEADLINE_SECONDS to store it).
    council_deadline_seconds: float = env("COUNCIL_DEADLINE_SECONDS", 600.0, gt=0)

    shutdown_grace_seconds: float = env("SHUTDOWN_GRACE_SECONDS", 10.0, ge=0)
    # After SIGTERM, keep serving (reporting NOT_SERVING) this long so load
    # balancers stop routing here before new calls are refused.
    shutdown_drain_seconds: float = env("SHUTDOWN_DRAIN_SECONDS", 0.0, ge=0)

    def secrets_with_defaults(self) -> list[str]:
        """Names of secret settings still holding their development default."""
        return []

    def check_production_ready(self) -> None:
        """Refuse to run in production with a default secret."""
        if self.environment is Environment.production:
            defaults = self.secrets_with_defaults()
            if defaults:
                raise SystemExit(
                    "refusing to start in production with default secrets: " + ", ".join(defaults)
                )


class TokenSettings(CommonSettings):
    """For the processes that issue (users) or verify (gateway) access tokens;
    no other process holds the signing key."""

    jwt_secret: SecretStr = env("JWT_SECRET", SecretStr(DEFAULT_JWT_SECRET))
    jwt_issuer: str = env("JWT_ISSUER", "fabula")
    access_token_ttl_seconds: int = env("ACCESS_TOKEN_TTL_SECONDS", 900, ge=60, le=86400)

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret_not_blank(cls, value: SecretStr) -> SecretStr:
        # An empty HMAC key would start "healthy" and then fail every token.
        if not value.get_secret_value().strip():
            raise ValueError("JWT_SECRET must not be empty")
        return value

    def secrets_with_defaults(self) -> list[str]:
        defaults = super().secrets_with_defaults()
        if self.jwt_secret.get_secret_value() == DEFAULT_JWT_SECRET:
            defaults.append("JWT_SECRET")
        return defaults


class ServiceSettings(CommonSettings):
    """A gRPC service with its own database schema. Subclasses set env_prefix
    (e.g. "USERS_") and the defaults of database_url and grpc_port."""

    database_url: str
    grpc_host: str = "127.0.0.1"
    grpc_port: int
    metrics_port: int = 0  # 0 = no metrics endpoint

    db_pool_size: int = env("DB_POOL_SIZE", 5, ge=1)
    db_max_overflow: int = env("DB_MAX_OVERFLOW", 10, ge=0)
    # Off: a round trip on every checkout. A connection the server closed is
    # dropped on checkout without one (fabula_common.db), and a dead one
    # costs the call that finds it (reads retry it once).
    db_pool_pre_ping: bool = env("DB_POOL_PRE_PING", False)
    db_pool_recycle_seconds: int = env("DB_POOL_RECYCLE_SECONDS", 1800)
    db_pool_timeout_seconds: float = env("DB_POOL_TIMEOUT_SECONDS", 5.0, gt=0)
    db_statement_timeout_ms: int = env("DB_STATEMENT_TIMEOUT_MS", 10000, ge=0)
    db_echo: bool = env("DB_ECHO", False)

    # Dependencies (the database, NATS) are probed this often, each probe
    # given this long before the dependency counts as down (health reports
    # it, and the service is NOT_SERVING while its database is down).
    health_check_interval_seconds: float = env("HEALTH_CHECK_INTERVAL_SECONDS", 3.0, gt=0)
    health_check_timeout_seconds: float = env("HEALTH_CHECK_TIMEOUT_SECONDS", 2.0, gt=0)

    outbox_poll_seconds: float = env("OUTBOX_POLL_SECONDS", 1.0, gt=0)
    # A row NATS refuses is retried after base * 2^(n-1) seconds (at most max),
    # and parked after this many attempts, so it never holds up the rows behind.
    outbox_max_attempts: int = env("OUTBOX_MAX_ATTEMPTS", 10, ge=1)
    outbox_retry_base_seconds: float = env("OUTBOX_RETRY_BASE_SECONDS", 1.0, gt=0)
    outbox_retry_max_seconds: float = env("OUTBOX_RETRY_MAX_SECONDS", 300.0, gt=0)

    # Connections older than this are closed (GOAWAY, with a jitter of 10%),
    # so callers resolve the service's name again and spread their calls over
    # pods added since they connected; 0 = connections live forever.
    grpc_max_connection_age_seconds: float = env("GRPC_MAX_CONNECTION_AGE_SECONDS", 300.0, ge=0)
    # Calls still running on a closed connection get this long to finish;
    # unset = the longest stream's deadline (GENERATION_DEADLINE_SECONDS, or
    # COUNCIL_DEADLINE_SECONDS for a council) + 10, so no stream is cut.
    grpc_max_connection_age_grace_seconds: float | None = env(
        "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", None, ge=0
    )

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @property
    def grpc_listen_address(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    def grpc_server_options(self) -> list[tuple[str, int]]:
        """Channel arguments of the gRPC server built from these settings."""
        options = [
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            # Our clients ping idle connections too, to notice a hung server.
            *SERVER_KEEPALIVE_OPTIONS,
        ]
        if self.grpc_max_connection_age_seconds:
            grace = self.grpc_max_connection_age_grace_seconds
            if grace is None:
                grace = (
                    max(self.generation_deadline_seconds, self.council_deadline_seconds) + 10
                )
            options += [
                ("grpc.max_connection_age_ms", int(self.grpc_max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", int(grace * 1000)),
            ]
        return options


def normalise_database_url(url: str) -> str:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// alike and
    return the asyncpg form. `sslmode` (libpq's name, as hosted Postgres hands
    it out) becomes asyncpg's `ssl`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ValueError("database URL must start with postgres:// or postgresql://")
    query = [("ssl", v) if k == "sslmode" else (k, v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg", query=urlencode(query)))
