"""Photos: the request body (with its limits) and responses."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fabula_gateway.schemas import NoNul, RequestBody

PhotoStatus = Literal["pending", "uploaded", "processing", "completed", "failed"]


class PhotoCreate(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"content_type": "image/png", "size_bytes": 48213, "filename": "cat.png"}]
        }
    )

    content_type: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
    ] = Field(description="The file's type: image/jpeg, image/png or image/webp (by default).")
    size_bytes: int = Field(gt=0, description="The file's size in bytes (10 MiB at most by default).")
    filename: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255), NoNul] = ""


class Rendition(BaseModel):
    name: str = Field(description="`original` (metadata stripped) or a WebP thumbnail, "
                      "`thumb_256`, `thumb_1024`.")
    content_type: str
    width: int
    height: int
    size_bytes: int
    url: str | None = Field(None, description="Download URL until `urls_expire_at`; "
                            "absent in lists.")


class Photo(BaseModel):
    id: str
    status: PhotoStatus = Field(description="pending -> uploaded -> processing -> completed "
                                "or failed.")
    content_type: str = Field(description="As declared; the detected type once processed.")
    size_bytes: int
    object_key: str
    failure_reason: str | None = Field(None, description="Why processing failed, for the user.")
    width: int | None = None
    height: int | None = None
    renditions: list[Rendition]
    urls_expire_at: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    processed_at: dt.datetime | None = None


class Upload(BaseModel):
    """Where to send the file's bytes, straight to storage."""

    url: str
    method: Literal["POST", "PUT"] = Field(
        description="POST: a multipart form with `fields` first, then the file as `file` "
        "(an S3 presigned POST). PUT: the file as the body, with `headers`."
    )
    headers: dict[str, str]
    fields: dict[str, str]
    expires_at: dt.datetime


class PhotoUpload(BaseModel):
    photo: Photo
    upload: Upload


class PhotoPage(BaseModel):
    items: list[Photo]
    next_cursor: str | None = None
