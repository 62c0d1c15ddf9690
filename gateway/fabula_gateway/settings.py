"""Configuration of the gateway (GATEWAY_* variables plus the common ones)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fabula_common.settings import TokenSettings
from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict


class GatewaySettings(TokenSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Prometheus /metrics listener, apart from the public port; 0 = none.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(0, ge=0, le=65535)
    # Largest request body accepted, counted on the raw bytes received.
    max_body_bytes: int = Field(65536, ge=1)
    # Limits against slow or greedy clients (docs/operations.md, "Gateway limits").
    # Largest request head (request line + headers); larger gets 431.
    max_header_bytes: int = Field(16384, ge=1024)
    # A request head must arrive whole this long after its first byte (or after
    # the connection opened); else 408 and the connection is closed.
    header_timeout_seconds: float = Field(10.0, gt=0)
    # The whole body must arrive this long after the head; else 408.
    body_timeout_seconds: float = Field(30.0, gt=0)
    # An idle keep-alive connection is closed after this long.
    keep_alive_timeout_seconds: float = Field(5.0, gt=0)
    # Requests served at once by this process; more get 503 at once.
    max_concurrent_requests: int = Field(500, ge=1)
    # Open connections of this process; more are answered 503 and closed.
    max_connections: int = Field(1000, ge=1)
    # How long /readyz waits for each service's health check.
    readiness_timeout_seconds: float = Field(1.0, gt=0)
    # Browser origins allowed to call the API; empty = no CORS headers at all.
    # GATEWAY_CORS_ORIGINS takes a JSON list or a comma-separated string.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long users' answer about an account or API key is trusted: a
    # deactivated account or revoked key stops working within it. While users
    # is unreachable the last answer is used however old.
    auth_cache_ttl_seconds: float = Field(30.0, gt=0, le=30)
    # Accounts and keys remembered at once (the oldest answers go first).
    auth_cache_max_entries: int = Field(10000, ge=1)
    # Trust X-Forwarded-For/-Proto only behind a proxy that sets them.
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    # A signed local-storage upload or download (a file streamed to or from
    # media) may take this long.
    transfer_timeout_seconds: float = Field(120.0, gt=0)
    # The API's public base URL (e.g. https://api.example.com), for the
    # identity-provider callback it registers; empty: taken from the request.
    public_url: str = ""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _metrics_apart_from_the_api(self) -> GatewaySettings:
        if self.metrics_port and self.metrics_port == self.port:
            raise ValueError("GATEWAY_METRICS_PORT must differ from GATEWAY_PORT")
        return self

    @property
    def service_addresses(self) -> dict[str, str]:
        """Address of every backend service, by name."""
        return {
            "users": self.users_addr,
            "stories": self.stories_addr,
            "generation": self.generation_addr,
            "billing": self.billing_addr,
            "media": self.media_addr,
        }
