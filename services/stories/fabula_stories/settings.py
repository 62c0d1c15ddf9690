"""Configuration of the stories service (STORIES_* variables plus the common ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from fabula_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STORIES_")

    database_url: str = "postgresql://fabula_stories:fabula_stories@127.0.0.1:5432/fabula"
    grpc_port: int = 50052

    # How much of a story the model is shown when continuing or ending it:
    # the most recent segments, and at most this many characters of them.
    context_segments: int = Field(6, ge=1, le=50)
    context_max_chars: int = Field(12_000, ge=500)
    # Deadline of the best-effort ReleaseReservation after a failed model
    # call; independent of the incoming call, whose deadline may be spent.
    release_timeout_seconds: float = Field(2.0, gt=0)
