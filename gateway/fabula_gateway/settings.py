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
    # How long /readyz waits for each service's health check.
    readiness_timeout_seconds: float = Field(1.0, gt=0)
    # Browser origins allowed to call the API; empty = no CORS headers at all.
    # GATEWAY_CORS_ORIGINS takes a JSON list or a comma-separated string.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Trust X-Forwarded-For/-Proto only behind a proxy that sets them.
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"

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
        }
