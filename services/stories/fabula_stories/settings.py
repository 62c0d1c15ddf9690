"""Configuration of the stories service (STORIES_* variables plus the common ones)."""

from __future__ import annotations

import socket

from fabula_common.settings import ServiceSettings, env
from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STORIES_")

    database_url: str = "postgresql://fabula_stories:fabula_stories@127.0.0.1:5432/fabula"
    grpc_port: int = 50052
    # Readers come many at a time: connections past the pool's size are
    # closed as they come back, and a busy read path would then open (and
    # Postgres fork) a connection for a few reads in every hundred.
    db_pool_size: int = env("DB_POOL_SIZE", 15, ge=1)

    # The model's context for the next segment (context/builder.py): memory,
    # lore, the most recent segments of the followed path, author's note and
    # direction within this many approximate tokens (characters / 4).
    context_max_tokens: int = Field(2048, ge=256, le=200_000)
    # At most this part of context_max_tokens goes to lore entries.
    lore_budget_share: float = Field(0.25, ge=0, le=1)
    # How many of the most recent path segments are searched for lore keys.
    lore_scan_segments: int = Field(4, ge=1, le=50)
    # Further caps on the segments shown, whatever the token budget: at most
    # this many of them, and this many characters in all.
    context_segments: int = Field(6, ge=1, le=50)
    context_max_chars: int = Field(12_000, ge=500)
    # One segment is written at a time per story: a writer claims the story
    # (and records the generation it asks for) for this long, and renews the
    # claim every third of it while it works. A writer that died stops
    # renewing, so its story is free again within this time, and the sweeper
    # then discards its generation (GenerationDiscarded). Short, because a
    # writer that died on a host that is not coming back is only noticed when
    # its lease runs out; renewals are retried quickly while the database is
    # away, so only an outage of more than two thirds of it can cost a writer
    # its claim (the text is then not stored, and not charged).
    write_lease_seconds: float = Field(10.0, gt=0)
    # How often claims whose lease ran out are looked for.
    sweep_interval_seconds: float = Field(2.0, gt=0)
    # Whose claims are whose: each claim is tagged with the name of the
    # process that made it. A process restarted under the same name (a
    # container keeps its hostname, a pod its name) discards its previous
    # incarnation's claims at once on startup instead of waiting for their
    # leases. Must differ between stories processes running at the same time.
    instance_name: str = Field(
        default_factory=socket.gethostname,
        validation_alias=AliasChoices("STORIES_INSTANCE_NAME", "HOSTNAME"),
        min_length=1,
        max_length=255,
    )
    # How often Idempotency-Keys past their 24 hours are deleted.
    idempotency_key_purge_interval_seconds: float = Field(3600.0, gt=0)

    # Clarifying questions the chairman may ask before the council deliberates
    # (at most this many; 0: never asks).
    council_follow_up_questions: int = env("COUNCIL_FOLLOW_UP_QUESTIONS", 0, ge=0, le=3)
    # On the free plan, conversations created more than this many days ago
    # are hidden (not deleted) until the user's plan is a paid one again
    # (conversations/plans.py); 0: never hidden.
    council_free_retention_days: int = env("COUNCIL_FREE_RETENTION_DAYS", 30, ge=0)

    @property
    def write_lease_renew_seconds(self) -> float:
        return self.write_lease_seconds / 3
