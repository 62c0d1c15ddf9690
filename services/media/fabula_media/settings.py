"""Configuration of the media service and its worker (MEDIA_* variables, plus
the common ones)."""

from __future__ import annotations

from enum import StrEnum

from fabula_common.settings import ServiceSettings, env
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from typing import Annotated, Any

DEFAULT_SIGNING_SECRET = "dev-only-insecure-media-signing-secret"
MIB = 1024 * 1024


class StorageChoice(StrEnum):
    # A folder on this machine; bytes travel through signed gateway URLs.
    local = "local"
    # Any S3-compatible store (AWS S3, MinIO, R2); bytes go to it directly.
    s3 = "s3"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIA_")

    database_url: str = "postgresql://fabula_media:fabula_media@127.0.0.1:5432/fabula"
    grpc_port: int = 50055

    storage: StorageChoice = StorageChoice.local
    # The local storage's folder (created when missing).
    local_dir: str = ".fabula/media"
    # The gateway's public address: signed local-storage URLs point at it.
    public_url: str = "http://127.0.0.1:8000"
    # Signs local-storage upload and download URLs (HMAC); set it in production.
    signing_secret: SecretStr = SecretStr(DEFAULT_SIGNING_SECRET)

    # S3: unset endpoint = AWS itself; e.g. http://minio:9000 for MinIO.
    s3_endpoint_url: str | None = None
    # The address clients reach the store at, for presigned URLs, when it
    # differs from the one media uses (a container name inside compose).
    s3_public_endpoint_url: str | None = None
    s3_bucket: str = "fabula-media"
    s3_region: str = "us-east-1"
    # Unset: botocore's usual chain (AWS_* variables, instance roles, ...).
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    # "path" works with every S3-compatible store; AWS also takes "virtual".
    s3_addressing_style: str = Field("path", pattern="^(path|virtual|auto)$")
    # Each S3 call's time limits.
    s3_connect_timeout_seconds: float = Field(5.0, gt=0)
    s3_read_timeout_seconds: float = Field(30.0, gt=0)

    # What an upload may be.
    max_upload_bytes: int = Field(10 * MIB, ge=1)
    allowed_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["image/jpeg", "image/png", "image/webp"]
    )
    # Width x height an image may have (decompression bombs are refused before decoding).
    max_pixels: int = Field(40_000_000, ge=1)
    # Lifetime of upload and download URLs.
    url_ttl_seconds: int = Field(900, ge=10, le=7 * 86400)
    # Longest side of each WebP thumbnail.
    thumbnail_sizes: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [256, 1024])
    # ReadPhoto never returns more than this, whatever the caller asks.
    read_max_bytes: int = Field(20 * MIB, ge=1)

    # Worker: image work runs on this many threads.
    processing_threads: int = Field(2, ge=1, le=32)
    # A storage call that fails is tried this many times (waiting 0.2 s, 0.4 s, ...).
    storage_attempts: int = Field(3, ge=1, le=10)
    # A photo still `uploaded` or `processing` this long after its last
    # attempt began is queued again (the event or the worker was lost) ...
    processing_timeout_seconds: float = Field(300.0, gt=0)
    # ... at most this many times in all, then failed.
    processing_max_attempts: int = Field(3, ge=1)
    sweep_seconds: float = Field(30.0, gt=0)

    @field_validator("allowed_types", mode="before")
    @classmethod
    def _split_types(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("thumbnail_sizes", mode="before")
    @classmethod
    def _split_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        from fabula_media.photos.images import FORMATS_BY_TYPE

        unknown = [kind for kind in value if kind not in FORMATS_BY_TYPE]
        if unknown or not value:
            raise ValueError(
                "MEDIA_ALLOWED_TYPES takes image/jpeg, image/png and image/webp, "
                f"not {', '.join(unknown) or 'nothing'}"
            )
        return value

    @field_validator("thumbnail_sizes")
    @classmethod
    def _sizes_in_range(cls, value: list[int]) -> list[int]:
        if not value or any(not 16 <= size <= 4096 for size in value):
            raise ValueError("MEDIA_THUMBNAIL_SIZES takes sizes between 16 and 4096 px")
        return sorted(set(value))

    @field_validator("signing_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("MEDIA_SIGNING_SECRET must not be empty")
        return value

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.storage is StorageChoice.s3 and not self.s3_bucket.strip():
            raise ValueError("MEDIA_STORAGE=s3 needs MEDIA_S3_BUCKET")
        return self

    def secrets_with_defaults(self) -> list[str]:
        defaults = super().secrets_with_defaults()
        if (
            self.storage is StorageChoice.local
            and self.signing_secret.get_secret_value() == DEFAULT_SIGNING_SECRET
        ):
            defaults.append("MEDIA_SIGNING_SECRET")
        return defaults
