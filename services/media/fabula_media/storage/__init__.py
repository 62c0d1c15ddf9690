"""Where files live: a local folder or an S3-compatible store, chosen by
MEDIA_STORAGE. Both offer the same operations; only the local one serves the
bytes through the gateway (PutUpload/GetDownload)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from fabula_common.errors import NotFound, Unavailable

from fabula_media.settings import Settings, StorageChoice


class StorageUnavailable(Unavailable):
    """Storage failed or did not answer in time: trying again later may work."""

    reason = "storage-unavailable"


class ObjectMissing(NotFound):
    """No object under the key."""


@dataclass(frozen=True)
class UploadTarget:
    """Where and how a client sends an object's bytes."""

    url: str
    method: str
    expires_at: dt.datetime
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


class Storage(Protocol):
    name: str

    async def upload_target(
        self, key: str, content_type: str, max_bytes: int, expires_at: dt.datetime
    ) -> UploadTarget: ...

    async def download_url(self, key: str, content_type: str, expires_at: dt.datetime) -> str: ...

    async def size_of(self, key: str) -> int | None:
        """The object's size; None when there is none."""

    async def read(self, key: str, max_bytes: int) -> bytes:
        """At most `max_bytes + 1` bytes (the caller sees it was too big); ObjectMissing."""

    async def write(self, key: str, data: bytes, content_type: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> None:
        """Every object whose key starts with `prefix`."""

    async def aclose(self) -> None: ...


def create_storage(settings: Settings) -> Storage:
    if settings.storage is StorageChoice.s3:
        from fabula_media.storage.s3 import S3Storage

        return S3Storage(settings)
    from fabula_media.storage.local import LocalStorage

    return LocalStorage(settings)
