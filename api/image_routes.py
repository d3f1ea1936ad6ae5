"""Endpoints under /images."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from fastapi.responses import FileResponse

from api.deps import (
    IndexDep,
    PresenterDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    require_api_key,
)
from api.responses import OpenedFileResponse
from api.schemas import (
    MAX_SAFE_INTEGER,
    ImageResponse,
    MessageResponse,
    Metadata,
    RowId,
    SimilarImage,
    error_responses,
    json_response,
)
from api.upload_spool import SpoolingRoute
from services import image_service, similarity_service
from services.image_service import IncomingUpload, UploadReport, WhichFile
from services.model_identity import active_model_id

router = APIRouter(
    prefix="/images",
    tags=["Images"],
    dependencies=[Depends(require_api_key)],
    # Multipart files are written once, straight into incoming/ (api/upload_spool.py).
    route_class=SpoolingRoute,
    # Any operation answers 503 while the database or the storage is down (api/errors.py).
    responses=error_responses(401, 503),
)

# min_length: the schema then says what FastAPI enforces (an empty multipart is a 422).
UploadFiles = Annotated[
    list[UploadFile], File(description="One or more image files.", min_length=1)
]


def incoming(files: list[UploadFile]) -> list[IncomingUpload]:
    return [IncomingUpload(filename=f.filename, stream=f.file) for f in files]


# Proxies refuse headers from about 8 KB, and clients' parsers earlier: the header lists the
# first few refused files only, and X-Rejected-Count says how many there were in all.
MAX_REJECTED_HEADER = 2048
MAX_REJECTED_NAME = 100
MAX_REJECTED_REASON = 200


def rejected_header(report: UploadReport) -> str:
    """The first refused files that fit in MAX_REJECTED_HEADER characters, as ASCII JSON."""
    listed: list[dict[str, str]] = []
    header = "[]"
    for rejection in report.rejected:
        entry = {
            "filename": rejection.filename[:MAX_REJECTED_NAME],
            "reason": rejection.reason[:MAX_REJECTED_REASON],
        }
        candidate = json.dumps([*listed, entry], ensure_ascii=True)
        if len(candidate) > MAX_REJECTED_HEADER:
            break
        listed.append(entry)
        header = candidate
    return header


def report_rejections(response: Response, report: UploadReport) -> None:
    """Files refused in an otherwise accepted upload: how many, and the first few (ASCII
    JSON) in headers."""
    if report.rejected:
        response.headers["X-Rejected-Files"] = rejected_header(report)
        response.headers["X-Rejected-Count"] = str(len(report.rejected))


@router.post(
    "/upload",
    operation_id="uploadImages",
    response_model=list[ImageResponse],
    responses=error_responses(400, 413),
)
def upload_images(
    files: UploadFiles,
    session: SessionDep,
    present: PresenterDep,
    settings: SettingsDep,
    response: Response,
) -> Response:
    """Upload images; duplicates (same bytes) answer with the existing image."""
    report = image_service.upload_images(session, settings, incoming(files))
    report_rejections(response, report)
    accepted = [present.image(r.image, r.is_duplicate, r.message) for r in report.accepted]
    return json_response(accepted, headers=response.headers)


@router.get("/", operation_id="getAllImages", response_model=list[ImageResponse])
def get_all_images(
    session: ReadSessionDep,
    present: PresenterDep,
    offset: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> Response:
    """List images ordered by id; `X-Total-Count` gives the total for pagination."""
    columns, rows, total = image_service.list_images(
        session, present.image_columns(), offset, limit
    )
    answer = present.images(columns, rows)
    answer.headers["X-Total-Count"] = str(total)
    return answer


@router.get(
    "/thumbnail/{image_id}",
    operation_id="getImageThumbnail",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404)},
)
def get_image_thumbnail(
    image_id: RowId, session: ReadSessionDep, settings: SettingsDep
) -> Response:
    """The JPEG thumbnail (made now if the background worker has not got to it yet)."""
    thumbnail = image_service.thumbnail_bytes(session, settings, image_id)
    return Response(thumbnail, media_type="image/jpeg")


@router.get(
    "/metadata/{image_id}",
    operation_id="getImageMetadata",
    response_model=Metadata,
    responses=error_responses(404),
)
def get_image_metadata(image_id: RowId, session: ReadSessionDep) -> Metadata:
    """The image's EXIF metadata."""
    return Metadata.model_validate(image_service.get_image(session, image_id))


@router.get(
    "/{image_id:int}/similar",
    operation_id="getSimilarImages",
    response_model=list[SimilarImage],
    responses=error_responses(404, 409, 503),
)
def get_similar_images(
    image_id: RowId,
    session: ReadSessionDep,
    present: PresenterDep,
    index: IndexDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 10,
    batch_id: RowId | None = None,
) -> list[SimilarImage]:
    """The most similar images (cosine similarity of embeddings), optionally within a batch."""
    found = similarity_service.similar_images(
        session, index, image_id, active_model_id(session), limit, batch_id
    )
    return [SimilarImage(image=present.image(image), similarity=sim) for image, sim in found]


@router.get(
    "/{image_id:int}",
    operation_id="getImageFile",
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}}}, **error_responses(404)},
)
def get_image_file(
    image_id: RowId,
    session: ReadSessionDep,
    settings: SettingsDep,
    which: Annotated[
        WhichFile,
        Query(
            description="`main`: the image's file; `companion`: the second file of a RAW+JPEG "
            "pair; `raw`: whichever of the two is the RAW (404 when the photo has none)."
        ),
    ] = "main",
) -> OpenedFileResponse:
    """The original file, as uploaded (or, for a RAW+JPEG pair, either of its two files)."""
    opened = image_service.open_original(session, settings, image_id, which)
    return OpenedFileResponse(
        opened.file,
        media_type=opened.mime_type,
        filename=opened.original_filename,
        content_disposition_type="inline",
    )


@router.delete(
    "/{image_id:int}",
    operation_id="deleteImage",
    response_model=MessageResponse,
    responses=error_responses(404),
)
def delete_image(image_id: RowId, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete an image, its files and its batch memberships."""
    image_service.delete_image(session, settings, image_id)
    return json_response(MessageResponse(message=f"Image {image_id} deleted."))
