"""Configuration of the stories service (STORIES_* variables plus the common ones)."""

from __future__ import annotations

from fabula_common.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STORIES_")

    database_url: str = "postgresql://fabula_stories:fabula_stories@127.0.0.1:5432/fabula"
    grpc_port: int = 50052

    # How much of a story the model is shown when continuing or ending it:
    # the most recent segments, and at most this many characters of them.
    context_segments: int = Field(6, ge=1, le=50)
    context_max_chars: int = Field(12_000, ge=500)
    # One segment is written at a time per story: a writer holds the story for
    # the model call's deadline plus this margin, which covers reading the
    # story and storing the result. A writer that crashed simply lets it expire.
    write_lease_margin_seconds: float = Field(30.0, gt=0)

    @property
    def write_lease_seconds(self) -> float:
        return self.generation_deadline_seconds + self.write_lease_margin_seconds
