"""Configuration of the generation service (GENERATION_*, MISTRAL_* and OPENAI_*
variables, plus the common ones)."""

from __future__ import annotations

import socket
from decimal import Decimal
from enum import StrEnum

from fabula_common.settings import ServiceSettings, env
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class ProviderChoice(StrEnum):
    # mistral when MISTRAL_API_KEY is set, else openai when OPENAI_BASE_URL is, else offline
    auto = "auto"
    offline = "offline"
    mistral = "mistral"
    # Any OpenAI-compatible server (OPENAI_BASE_URL): Ollama, vLLM, llama.cpp, gateways.
    openai = "openai"


class ModelPrice(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(frozen=True)

    prompt: Decimal = Field(ge=0)
    completion: Decimal = Field(ge=0)


# Mistral's list prices (USD per million tokens). GENERATION_PRICES_JSON
# overrides or extends them per model, e.g.
#   {"mistral-small-latest": {"prompt": "0.1", "completion": "0.3"}}
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "offline": ModelPrice(prompt=Decimal(0), completion=Decimal(0)),
    "mistral-small-latest": ModelPrice(prompt=Decimal("0.1"), completion=Decimal("0.3")),
    "mistral-medium-latest": ModelPrice(prompt=Decimal("0.4"), completion=Decimal("2")),
    "mistral-large-latest": ModelPrice(prompt=Decimal("2"), completion=Decimal("6")),
    "open-mistral-nemo": ModelPrice(prompt=Decimal("0.15"), completion=Decimal("0.15")),
}
# An unknown model is billed like the dearest one we know rather than for free.
DEFAULT_FALLBACK_PRICE = ModelPrice(prompt=Decimal("2"), completion=Decimal("6"))


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GENERATION_")

    database_url: str = "postgresql://fabula_generation:fabula_generation@127.0.0.1:5432/fabula"
    grpc_port: int = 50053

    # Deadline of the fast-path ReleaseReservation when a reserved call cannot
    # be recorded; independent of the incoming call, whose deadline may be spent.
    release_timeout_seconds: float = Field(2.0, gt=0)
    # How often the sweeper looks for generations whose process died mid-call,
    # and how long after the longest a call may last (GENERATION_DEADLINE_SECONDS
    # or MISTRAL_/OPENAI_TIMEOUT_SECONDS) a generation still started counts as abandoned.
    sweep_seconds: float = Field(15.0, gt=0)
    abandon_margin_seconds: float = Field(30.0, ge=0)
    # The name of this process's instance, written on every generation it
    # starts: the pod name (Kubernetes sets HOSTNAME to it), else the host's
    # name. A process that starts again under the same name (a container
    # restarted in place) settles at once what its previous run left started.
    # Two processes running at once must not share it.
    instance_name: str = Field(
        default_factory=socket.gethostname,
        validation_alias="HOSTNAME",
        min_length=1,
        max_length=255,
    )

    # Story suggestions a user may ask for per window (a fixed window of
    # GENERATION_SUGGESTIONS_RATE_WINDOW_SECONDS); more are refused with a retry delay.
    suggestions_rate_limit: int = Field(10, ge=1)
    suggestions_rate_window_seconds: float = Field(60.0, gt=0)

    # Long-form jobs: how many a user may have queued or running, per plan
    # (a plan not listed gets the free plan's), e.g. {"free": 1, "pro": 3}.
    jobs_running_limits: dict[str, int] = Field(
        default_factory=lambda: {"free": 1, "pro": 3, "enterprise": 10}
    )
    # A worker holds a job for this long past its last heartbeat: a worker
    # silent longer is taken for dead and another one resumes the job.
    jobs_lease_seconds: float = Field(15.0, gt=0)
    # How often a worker looks for a cancel of its job (the stop is at most
    # this late) and, idle, for a job to take.
    jobs_cancel_poll_seconds: float = Field(0.25, gt=0, le=5)
    jobs_claim_poll_seconds: float = Field(0.5, gt=0)
    # A job worker's name, on the generations it starts (as instance_name is the
    # service's); default: "<instance_name>-worker". Two workers running at once
    # must not share it.
    worker_name: str | None = Field(None, min_length=1, max_length=255)

    provider: ProviderChoice = ProviderChoice.auto
    # Pause between the offline provider's words, to make its streaming visible.
    offline_token_delay_ms: int = Field(0, ge=0, le=10_000)

    prices: dict[str, ModelPrice] = env("GENERATION_PRICES_JSON", default_factory=dict)
    fallback_price: ModelPrice = env("GENERATION_FALLBACK_PRICE_JSON", DEFAULT_FALLBACK_PRICE)

    mistral_api_key: SecretStr | None = env("MISTRAL_API_KEY", None)
    # At most what the generations.model column holds.
    mistral_model: str = env("MISTRAL_MODEL", "mistral-small-latest", min_length=1, max_length=128)
    # Base URL of any endpoint speaking Mistral's API (a proxy, a self-hosted
    # deployment), without the /v1 the SDK appends; unset = Mistral's own.
    mistral_server_url: str | None = env("MISTRAL_SERVER_URL", None)
    # Time limits of a model call; a sooner deadline of the incoming call wins.
    # Connecting, including the wait for a free connection of the pool.
    mistral_connect_timeout_seconds: float = env("MISTRAL_CONNECT_TIMEOUT_SECONDS", 5.0, gt=0)
    # From the request to the first streamed token (or a whole non-streamed answer).
    mistral_first_token_timeout_seconds: float = env(
        "MISTRAL_FIRST_TOKEN_TIMEOUT_SECONDS", 30.0, gt=0
    )
    # Silence between two streamed chunks: a stream lives as long as it produces.
    mistral_idle_timeout_seconds: float = env("MISTRAL_IDLE_TIMEOUT_SECONDS", 30.0, gt=0)
    # The last bound on a whole call, however productive (and the sweeper's horizon).
    mistral_timeout_seconds: float = env("MISTRAL_TIMEOUT_SECONDS", 300.0, gt=0)
    # Connections to the provider: one per concurrent call (a stream holds its
    # own while it lasts); calls beyond it wait, up to the connect limit.
    mistral_max_connections: int = env("MISTRAL_MAX_CONNECTIONS", 1000, ge=1)
    mistral_max_tokens: int = env("MISTRAL_MAX_TOKENS", 800, ge=16)
    mistral_temperature: float = env("MISTRAL_TEMPERATURE", 0.8, ge=0, le=1.5)
    # Checks a child-safe account's directions and stories (classifiers.moderate).
    mistral_moderation_model: str = env(
        "MISTRAL_MODERATION_MODEL", "mistral-moderation-latest", min_length=1, max_length=128
    )

    # Any server speaking OpenAI's chat-completions API, with the /v1 its
    # routes start with, e.g. http://localhost:11434/v1 (Ollama),
    # http://localhost:8000/v1 (vLLM), https://api.openai.com/v1.
    openai_base_url: str | None = env("OPENAI_BASE_URL", None)
    # Local servers usually need none (a placeholder is sent).
    openai_api_key: SecretStr | None = env("OPENAI_API_KEY", None)
    # The server's name for the model (e.g. "llama3.2" on Ollama); at most
    # what the generations.model column holds.
    openai_model: str = env("OPENAI_MODEL", "gpt-4o-mini", min_length=1, max_length=128)
    # The same limits as Mistral's (above), for this provider's calls.
    openai_connect_timeout_seconds: float = env("OPENAI_CONNECT_TIMEOUT_SECONDS", 5.0, gt=0)
    openai_first_token_timeout_seconds: float = env(
        "OPENAI_FIRST_TOKEN_TIMEOUT_SECONDS", 30.0, gt=0
    )
    openai_idle_timeout_seconds: float = env("OPENAI_IDLE_TIMEOUT_SECONDS", 30.0, gt=0)
    openai_timeout_seconds: float = env("OPENAI_TIMEOUT_SECONDS", 300.0, gt=0)
    openai_max_connections: int = env("OPENAI_MAX_CONNECTIONS", 1000, ge=1)
    openai_max_tokens: int = env("OPENAI_MAX_TOKENS", 800, ge=16)
    openai_temperature: float = env("OPENAI_TEMPERATURE", 0.8, ge=0, le=2)

    # The council (fabula_generation.council). Members, comma-separated, as
    # "provider/model" with provider offline, mistral or openai, e.g.
    # "mistral/mistral-small-latest,openai/llama3.2"; empty: three offline
    # members when no model is configured, else the configured model alone.
    council_members: str = env("COUNCIL_MEMBERS", "")
    # Writes the final answer; empty: the first member.
    council_chairman: str = env("COUNCIL_CHAIRMAN", "")
    # Stand in, in order, when the chairman fails; unset: the other members.
    council_chairman_fallbacks: str | None = env("COUNCIL_CHAIRMAN_FALLBACKS", None)
    # Clarifying questions the chairman may ask before deliberating (0: none).
    council_follow_up_questions: int = env("COUNCIL_FOLLOW_UP_QUESTIONS", 0, ge=0, le=3)
    # Members per plan (a plan not listed gets the free plan's), at most the configured ones.
    council_size_by_plan: dict[str, int] = env(
        "COUNCIL_SIZE_BY_PLAN", default_factory=lambda: {"free": 3, "pro": 5, "enterprise": 7}
    )

    @model_validator(mode="after")
    def _mistral_needs_a_key(self) -> Settings:
        if self.provider is ProviderChoice.mistral and not self.has_mistral_key:
            raise ValueError("GENERATION_PROVIDER=mistral needs MISTRAL_API_KEY")
        if self.provider is ProviderChoice.openai and not self.has_openai_base_url:
            raise ValueError("GENERATION_PROVIDER=openai needs OPENAI_BASE_URL")
        for member in self.council_models:
            provider, _, model = member.partition("/")
            if provider not in {"offline", "mistral", "openai"} or not model or len(model) > 128:
                raise ValueError(
                    f"council model {member!r} must be provider/model with provider "
                    "offline, mistral or openai"
                )
            if provider == "mistral" and not self.has_mistral_key:
                raise ValueError(f"council model {member} needs MISTRAL_API_KEY")
            if provider == "openai" and not self.has_openai_base_url:
                raise ValueError(f"council model {member} needs OPENAI_BASE_URL")
        return self

    @property
    def council_member_models(self) -> list[str]:
        """The council's members, "provider/model", in configured order."""
        configured = _names(self.council_members)
        if configured:
            return configured
        resolved = self.resolved_provider
        if resolved is ProviderChoice.mistral:
            return [f"mistral/{self.mistral_model}"]
        if resolved is ProviderChoice.openai:
            return [f"openai/{self.openai_model}"]
        return ["offline/alpha", "offline/beta", "offline/gamma"]

    @property
    def council_chairman_model(self) -> str:
        return self.council_chairman.strip() or self.council_member_models[0]

    @property
    def council_fallback_models(self) -> list[str]:
        if self.council_chairman_fallbacks is not None:
            return _names(self.council_chairman_fallbacks)
        chairman = self.council_chairman_model
        return [member for member in self.council_member_models if member != chairman]

    @property
    def council_models(self) -> list[str]:
        """Every model the council may call, each once."""
        models = [*self.council_member_models]
        models += [self.council_chairman_model, *self.council_fallback_models]
        return list(dict.fromkeys(models))

    @property
    def has_openai_base_url(self) -> bool:
        return bool(self.openai_base_url and self.openai_base_url.strip())

    @property
    def has_mistral_key(self) -> bool:
        return bool(self.mistral_api_key and self.mistral_api_key.get_secret_value().strip())

    @property
    def resolved_provider(self) -> ProviderChoice:
        """The provider to run: `auto` resolved."""
        if self.provider is ProviderChoice.auto:
            if self.has_mistral_key:
                return ProviderChoice.mistral
            if self.has_openai_base_url:
                return ProviderChoice.openai
            return ProviderChoice.offline
        return self.provider

    @property
    def abandon_after_seconds(self) -> float:
        """Age of a started generation no call can still be serving."""
        longest_call = max(
            self.generation_deadline_seconds,
            self.mistral_timeout_seconds,
            self.openai_timeout_seconds,
        )
        return longest_call + self.abandon_margin_seconds

    @property
    def resolved_worker_name(self) -> str:
        return self.worker_name or f"{self.instance_name}-worker"

    def price_table(self) -> dict[str, ModelPrice]:
        return {**DEFAULT_PRICES, **self.prices}


def _names(value: str) -> list[str]:
    """The distinct non-empty names of a comma-separated list, in order."""
    return list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
