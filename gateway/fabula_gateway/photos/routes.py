"""Photos: create (an upload URL straight to storage), complete, list, get,
delete; and, when media stores in a local folder, the signed transfer routes
those URLs point at (the gateway streams the bytes to and from media, and
holds no file itself)."""

from __future__ import annotations

from typing import Annotated

import grpc
from fabula.media.v1 import media_pb2
from fastapi import APIRouter, Depends, Path, Request, Response, status
from starlette.responses import StreamingResponse

from fabula_gateway.dependencies import Clients, CurrentUserId, JsonBody
from fabula_gateway.openapi import problem_responses
from fabula_gateway.photos.mappers import photo_from_proto, photo_upload_from_proto
from fabula_gateway.photos.schemas import Photo, PhotoCreate, PhotoPage, PhotoUpload
from fabula_gateway.projects.routes import Cursor, Limit, parse_uuid
from fabula_gateway.problems import NOT_FOUND, ProblemError

photos_router = APIRouter(prefix="/v1/photos", tags=["photos"])
transfer_router = APIRouter(prefix="/v1/media", tags=["photos"])
# Both routers, for the app's modules tuple.
router = APIRouter()

# gRPC messages of an upload stay well below the 4 MiB message cap.
UPLOAD_CHUNK_BYTES = 256 * 1024
# Signed upload URLs: their bodies are streamed to media, not buffered.
UPLOADS_PATH = "/v1/media/uploads/"

_S422_CREATE = (
    "The type is not allowed (type `unsupported-media-type`), the file is larger than the "
    "limit (type `file-too-large`), or the body is not valid."
)
_S409_COMPLETE = (
    "Storage has no bytes for the photo yet (type `upload-missing`): upload them first."
)

_S403_LINK = (
    "The link is not one this API signed (type `bad-signature`) or has expired "
    "(type `url-expired`): get a new one."
)


async def _photo_ref(
    user_id: CurrentUserId,
    photo_id: Annotated[str, Path(description="The photo's id (a UUID).")],
) -> media_pb2.PhotoRef:
    return media_pb2.PhotoRef(user_id=user_id, photo_id=parse_uuid(photo_id, "Photo"))

PhotoRef = Annotated[media_pb2.PhotoRef, Depends(_photo_ref)]


@photos_router.post(
    "",
    operation_id="create_photo",
    status_code=status.HTTP_201_CREATED,
    response_model=PhotoUpload,
    summary="Create a photo and get its upload URL",
    description="The photo starts `pending`. Send the file's bytes to `upload.url` as "
    "`upload.method` says (POST: a multipart form of `upload.fields`, then the file as `file`; "
    "PUT: the file as the body with `upload.headers`) before `upload.expires_at`, then "
    "complete the photo.",
    responses=problem_responses(401, 413, 415, 422, 500, 503, s422=_S422_CREATE),
)
async def create_photo(
    body: PhotoCreate, _json: JsonBody, user_id: CurrentUserId, clients: Clients,
    response: Response,
) -> PhotoUpload:
    created = await clients.media.CreatePhoto(
        media_pb2.CreatePhotoRequest(
            user_id=user_id,
            content_type=body.content_type,
            size_bytes=body.size_bytes,
            filename=body.filename,
        )
    )
    response.headers["Location"] = f"/v1/photos/{created.photo.id}"
    return photo_upload_from_proto(created)


@photos_router.post(
    "/{photo_id}/complete",
    operation_id="complete_photo",
    response_model=Photo,
    summary="Say the photo's bytes are uploaded",
    description="The photo becomes `uploaded` and is processed in the background (the type "
    "checked from the bytes, metadata such as GPS stripped, thumbnails made); poll it until "
    "`completed` or `failed`. Completing again changes nothing.",
    responses=problem_responses(401, 404, 409, 500, 503, s409=_S409_COMPLETE),
)
async def complete_photo(ref: PhotoRef, clients: Clients) -> Photo:
    return photo_from_proto(await clients.media.CompletePhoto(ref))


@photos_router.get(
    "",
    operation_id="list_photos",
    response_model=PhotoPage,
    summary="List photos",
    description="Newest first, a page at a time (no download URLs: get a photo for those).",
    responses=problem_responses(401, 422, 500, 503),
)
async def list_photos(
    user_id: CurrentUserId, clients: Clients, limit: Limit = 20, cursor: Cursor = None
) -> PhotoPage:
    page = await clients.media.ListPhotos(
        media_pb2.ListPhotosRequest(user_id=user_id, page_size=limit, cursor=cursor or "")
    )
    return PhotoPage(
        items=[photo_from_proto(photo) for photo in page.photos],
        next_cursor=page.next_cursor or None,
    )


@photos_router.get(
    "/{photo_id}",
    operation_id="get_photo",
    response_model=Photo,
    summary="Get a photo",
    description="Its status and, once completed, a download URL for the original (metadata "
    "stripped) and each thumbnail, valid until `urls_expire_at`.",
    responses=problem_responses(401, 404, 500, 503),
)
async def get_photo(ref: PhotoRef, clients: Clients) -> Photo:
    return photo_from_proto(await clients.media.GetPhoto(ref))


@photos_router.delete(
    "/{photo_id}",
    operation_id="delete_photo",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a photo",
    description="The photo and every stored file of it.",
    responses=problem_responses(401, 404, 500, 503),
)
async def delete_photo(ref: PhotoRef, clients: Clients) -> Response:
    await clients.media.DeletePhoto(ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Signed local-storage transfers (no bearer token: the signature is the grant) ---

Token = Annotated[str, Path(description="The signed token of the URL media returned.",
                            max_length=4096)]


@transfer_router.put(
    "/uploads/{token}",
    operation_id="upload_media",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Upload a file to a signed URL",
    description="The body is the file, with the Content-Type declared when the photo was "
    "created. Only for URLs this API returned (local storage).",
    responses=problem_responses(403, 404, 415, 422, 500, 503, s403=_S403_LINK,
                                s415="The Content-Type is not the one declared.",
                                s422="The file is larger than the limit (type `file-too-large`)."),
)
async def upload_media(token: Token, request: Request, clients: Clients) -> Response:
    content_type = request.headers.get("content-type", "")

    async def chunks():
        yield media_pb2.UploadChunk(token=token, content_type=content_type)
        async for data in request.stream():
            for start in range(0, len(data), UPLOAD_CHUNK_BYTES):
                yield media_pb2.UploadChunk(data=data[start : start + UPLOAD_CHUNK_BYTES])

    await clients.media.PutUpload(chunks(), timeout=clients.transfer_timeout)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@transfer_router.get(
    "/downloads/{token}",
    operation_id="download_media",
    response_class=StreamingResponse,
    summary="Download a file from a signed URL",
    description="The file's bytes. Only for URLs this API returned (local storage).",
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The file.",
        },
        **problem_responses(403, 404, 500, 503, s403=_S403_LINK),
    },
)
async def download_media(token: Token, clients: Clients) -> StreamingResponse:
    stream = clients.media.GetDownload(
        media_pb2.DownloadRequest(token=token), timeout=clients.transfer_timeout
    )
    # The first chunk carries the type and size: errors (a bad or expired
    # link) surface here, before the response starts.
    first = await stream.read()
    if first is grpc.aio.EOF:
        raise ProblemError(NOT_FOUND, "File not found.")

    async def body():
        # read() throughout: grpc.aio refuses iterating a call once read() was used.
        chunk = first
        while chunk is not grpc.aio.EOF:
            yield chunk.data
            chunk = await stream.read()

    return StreamingResponse(
        body(),
        media_type=first.content_type or "application/octet-stream",
        headers={"Content-Length": str(first.size_bytes), "Cache-Control": "private, max-age=300"},
    )


router.include_router(photos_router)
router.include_router(transfer_router)
