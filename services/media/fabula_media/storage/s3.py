"""Objects in any S3-compatible store (AWS S3, MinIO, R2) through aiobotocore:
botocore's own request signing, presigned POST policies and SigV4 URLs, on
asyncio. Clients upload with a presigned POST whose policy pins the declared
Content-Type and a size range (S3 itself refuses anything else) and download
with presigned GETs; the bytes never pass through Fabula's processes."""

from __future__ import annotations

import asyncio
import datetime as dt
from contextlib import AsyncExitStack

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from fabula_media.settings import Settings
from fabula_media.storage import ObjectMissing, StorageUnavailable, UploadTarget

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# delete_objects takes at most this many keys per call.
_DELETE_BATCH = 1000


def _seconds_until(moment: dt.datetime) -> int:
    return max(1, int((moment - dt.datetime.now(dt.UTC)).total_seconds()))


class S3Storage:
    name = "s3"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._exit_stack = AsyncExitStack()
        self._client = None
        self._signer = None
        self._opening = asyncio.Lock()

    def _client_args(self, endpoint_url: str | None) -> dict:
        s = self.settings
        secret = s.s3_secret_access_key.get_secret_value() if s.s3_secret_access_key else None
        return {
            "service_name": "s3",
            "region_name": s.s3_region,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": s.s3_access_key_id,
            "aws_secret_access_key": secret,
            "config": AioConfig(
                signature_version="s3v4",
                s3={"addressing_style": s.s3_addressing_style},
                connect_timeout=s.s3_connect_timeout_seconds,
                read_timeout=s.s3_read_timeout_seconds,
                # One quick retry inside a call; the worker retries more slowly.
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        }

    async def _clients(self):
        """The client media calls S3 with, and the one that signs URLs for
        clients (the public endpoint, when it differs: a signature covers the host)."""
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    session = get_session()
                    s = self.settings
                    client = await self._exit_stack.enter_async_context(
                        session.create_client(**self._client_args(s.s3_endpoint_url))
                    )
                    signer = client
                    public = s.s3_public_endpoint_url
                    if public and public.rstrip("/") != (s.s3_endpoint_url or "").rstrip("/"):
                        signer = await self._exit_stack.enter_async_context(
                            session.create_client(**self._client_args(public))
                        )
                    self._client, self._signer = client, signer
        return self._client, self._signer

    async def upload_target(
        self, key: str, content_type: str, max_bytes: int, expires_at: dt.datetime
    ) -> UploadTarget:
        _, signer = await self._clients()
        post = await signer.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=_seconds_until(expires_at),
        )
        return UploadTarget(
            url=post["url"], method="POST", expires_at=expires_at, fields=dict(post["fields"])
        )

    async def download_url(self, key: str, content_type: str, expires_at: dt.datetime) -> str:
        _, signer = await self._clients()
        return await signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=_seconds_until(expires_at),
        )

    async def size_of(self, key: str) -> int | None:
        client, _ = await self._clients()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return None
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        return int(head["ContentLength"])

    async def read(self, key: str, max_bytes: int) -> bytes:
        client, _ = await self._clients()
        try:
            response = await client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{max_bytes}"
            )
            async with response["Body"] as body:
                return await body.read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise ObjectMissing(key) from None
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc

    async def write(self, key: str, data: bytes, content_type: str) -> None:
        client, _ = await self._clients()
        try:
            await client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc

    async def delete_prefix(self, prefix: str) -> None:
        client, _ = await self._clients()
        try:
            paginator = client.get_paginator("list_objects_v2")
            keys: list[str] = []
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", [])]
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start : start + _DELETE_BATCH]
                await client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc

    async def aclose(self) -> None:
        await self._exit_stack.aclose()
        self._client = self._signer = None


def _unavailable(exc: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"object storage failed: {exc}")
