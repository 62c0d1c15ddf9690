"""Files in a local folder (MEDIA_LOCAL_DIR), for development and single-host
runs. Clients send and fetch the bytes through signed gateway URLs
(/v1/media/uploads/{token}, /v1/media/downloads/{token}); the gateway streams
them to and from this service (PutUpload/GetDownload). File work runs on
threads: the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fabula_common.errors import FileTooLarge, InvalidArgument, UnsupportedMediaType

from fabula_media.settings import Settings
from fabula_media.storage import ObjectMissing, StorageUnavailable, UploadTarget
from fabula_media.storage.signing import DOWNLOAD, UPLOAD, Grant, sign, verify

UPLOAD_PATH = "/v1/media/uploads/"
DOWNLOAD_PATH = "/v1/media/downloads/"
CHUNK_BYTES = 64 * 1024


class LocalStorage:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.root = Path(settings.local_dir).resolve()
        self.public_url = settings.public_url.rstrip("/")
        self._secret = settings.signing_secret.get_secret_value()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidArgument("object key escapes the storage folder")
        return path

    async def upload_target(
        self, key: str, content_type: str, max_bytes: int, expires_at: dt.datetime
    ) -> UploadTarget:
        token = sign(self._secret, UPLOAD, Grant(key, content_type, max_bytes), expires_at)
        return UploadTarget(
            url=f"{self.public_url}{UPLOAD_PATH}{token}",
            method="PUT",
            expires_at=expires_at,
            headers={"Content-Type": content_type},
        )

    async def download_url(self, key: str, content_type: str, expires_at: dt.datetime) -> str:
        token = sign(self._secret, DOWNLOAD, Grant(key, content_type), expires_at)
        return f"{self.public_url}{DOWNLOAD_PATH}{token}"

    async def size_of(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(os.stat, self._path(key))).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"local storage: {exc.strerror}") from exc

    async def read(self, key: str, max_bytes: int) -> bytes:
        def read() -> bytes:
            with open(self._path(key), "rb") as file:
                return file.read(max_bytes + 1)

        try:
            return await asyncio.to_thread(read)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"local storage: {exc.strerror}") from exc

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Whole or not at all: a reader never sees half a file.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as file:
                file.write(data)
            os.replace(file.name, path)

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise StorageUnavailable(f"local storage: {exc.strerror}") from exc

    async def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))

        def delete() -> None:
            # Our keys are folders (a photo, a user) or whole file names.
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

        try:
            await asyncio.to_thread(delete)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageUnavailable(f"local storage: {exc.strerror}") from exc

    async def aclose(self) -> None:
        pass

    async def receive_upload(self, token: str, content_type: str, chunks: AsyncIterator[bytes]) -> int:
        """Store the bytes of a signed upload URL; their count. The type sent
        must be the one declared and signed, the size at most the signed cap."""
        grant = verify(self._secret, UPLOAD, token)
        sent_type = content_type.split(";", 1)[0].strip().lower()
        if sent_type != grant.content_type:
            raise UnsupportedMediaType(
                f"the upload must be sent as {grant.content_type}, as declared, not "
                f"{sent_type or 'without a Content-Type'}",
                metadata={"upload": "true"},
            )
        path = self._path(grant.key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        file = await asyncio.to_thread(open, partial, "wb")
        received = 0
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > grant.max_bytes:
                    raise FileTooLarge(f"the file is larger than {grant.max_bytes} bytes")
                await asyncio.to_thread(file.write, chunk)
            await asyncio.to_thread(file.close)
            await asyncio.to_thread(os.replace, partial, path)
        except BaseException:
            await asyncio.to_thread(file.close)
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise
        return received

    async def open_download(self, token: str) -> tuple[str, int, AsyncIterator[bytes]]:
        """The content type, size and chunks of a signed download URL's object."""
        grant = verify(self._secret, DOWNLOAD, token)
        path = self._path(grant.key)
        try:
            file = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise ObjectMissing(grant.key) from None
        size = (await asyncio.to_thread(os.fstat, file.fileno())).st_size

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                    yield chunk
            finally:
                await asyncio.to_thread(file.close)

        return grant.content_type, size, chunks()
