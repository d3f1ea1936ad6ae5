"""Endpoints under /batches: grouping batches of images."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import (
    ClusteringPoolDep,
    PresenterDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    require_api_key,
)
from api.image_routes import UploadFiles, incoming, report_rejections
from api.schemas import (
    DEFAULT_SUMMARY_GROUPS,
    MAX_SAFE_INTEGER,
    MAX_SUMMARY_GROUPS,
    AnalyzeRequest,
    AnswerView,
    BatchCreate,
    BatchRename,
    BatchResponse,
    GroupsUpdate,
    ImageIds,
    MessageResponse,
    Presenter,
    RejectedFile,
    RowId,
    encoded_batch_answer,
    error_responses,
    json_response,
)
from api.upload_spool import SpoolingRoute
from services import (
    analysis_service,
    batch_service,
    contact_sheet,
    export_service,
    picks_export,
    xmp_export,
)
from services.analysis_service import AnalysisParameters

router = APIRouter(
    prefix="/batches",
    tags=["Grouping Batches"],
    dependencies=[Depends(require_api_key)],
    # Multipart files are written once, straight into incoming/ (api/upload_spool.py).
    route_class=SpoolingRoute,
    # Any operation answers 503 while the database or the storage is down (api/errors.py).
    responses=error_responses(401, 503),
)


BatchViewQuery = Annotated[
    batch_service.BatchView,
    Query(
        description="`full` (default): the whole page, every image. `summary`: counts, covers "
        "and `groups` only, `image_associations` empty (kilobytes at 100k images, where the "
        "page is 46 MB); the analysis's notes are in `groups`, not repeated in `parameters`."
    ),
]


def batch_view(
    view: BatchViewQuery = "full",
    group_offset: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SAFE_INTEGER,
            description="`view=summary`: groups skipped (0); not used by `view=full`.",
        ),
    ] = None,
    group_limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_SUMMARY_GROUPS,
            description=f"`view=summary`: groups listed at most ({DEFAULT_SUMMARY_GROUPS}); "
            "`X-Total-Groups` gives how many the batch has.",
        ),
    ] = None,
) -> AnswerView:
    """What a batch answer holds; the summary's groups a page at a time. The full page, the
    frontend's, always lists every group: there the window is not used (refusing it would
    refuse requests the published schema admits)."""
    return AnswerView(view, group_offset or 0, group_limit or DEFAULT_SUMMARY_GROUPS)


BatchViewDep = Annotated[AnswerView, Depends(batch_view)]


@router.post(
    "/",
    operation_id="createBatch",
    response_model=BatchResponse,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 404),
)
def create_batch(
    body: BatchCreate, session: SessionDep, present: PresenterDep, view: BatchViewDep
) -> Response:
    """Create a batch from existing images."""
    answer = batch_service.create_batch(
        session, body.name, body.image_ids, view.kind, present.image_columns(), present.active_model
    )
    return present.batch_answer(answer, view, status_code=status.HTTP_201_CREATED)


@router.get("/", operation_id="getAllBatches", response_model=list[BatchResponse])
def get_all_batches(
    session: ReadSessionDep,
    present: PresenterDep,
    include: Annotated[
        Literal["images", "summary"],
        Query(description="`summary`: counts and preview ids, `image_associations` left empty."),
    ] = "images",
    offset: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> Response:
    """Batches by id with their images (a fixed number of queries, however many);
    `X-Total-Count` gives the number of batches for pagination."""
    if include == "summary":
        summaries, total = batch_service.batch_summaries(
            session, present.active_model, offset, limit
        )
        return present.batch_summaries(summaries, total)
    pages, total = batch_service.batch_pages(session, present.image_columns(), offset, limit)
    return present.batch_list(pages, total)


@router.get(
    "/{batch_id}",
    operation_id="getBatch",
    response_model=BatchResponse,
    responses=error_responses(404),
)
def get_batch(
    batch_id: RowId, session: ReadSessionDep, present: PresenterDep, view: BatchViewDep
) -> Response:
    """One batch; images ordered by group, then quality rank, then id."""
    answer = batch_service.batch_answer(
        session, batch_id, view.kind, present.image_columns(), present.active_model
    )
    return present.batch_answer(answer, view)


@router.put(
    "/{batch_id}",
    operation_id="renameBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
def rename_batch(
    batch_id: RowId, body: BatchRename, session: SessionDep, present: PresenterDep
) -> Response:
    """Rename a batch."""
    return present.batch(batch_service.rename_batch(session, batch_id, body.name))


@router.delete(
    "/{batch_id}",
    operation_id="deleteBatch",
    response_model=MessageResponse,
    responses=error_responses(404),
)
def delete_batch(batch_id: RowId, session: SessionDep) -> Response:
    """Delete a batch; its images stay."""
    batch_service.delete_batch(session, batch_id)
    return json_response(MessageResponse(message=f"Batch {batch_id} deleted."))


@router.post(
    "/{batch_id}/images",
    operation_id="addImagesToBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
def add_images_to_batch(
    batch_id: RowId, body: ImageIds, session: SessionDep, present: PresenterDep
) -> Response:
    """Add existing images to a batch; members keep their labels."""
    page = batch_service.add_images(session, batch_id, body.image_ids, present.image_columns())
    return present.batch_page(page)


@router.delete(
    "/{batch_id}/images",
    operation_id="removeImagesFromBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
def remove_images_from_batch(
    batch_id: RowId, session: SessionDep, present: PresenterDep, body: ImageIds = Body()
) -> Response:
    """Remove images from a batch (JSON body); the rest keep their labels."""
    batch = batch_service.remove_images(session, batch_id, body.image_ids)
    return present.batch(batch)


@router.post(
    "/{batch_id}/upload-and-add",
    operation_id="uploadAndAddImagesToBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404, 413),
)
def upload_and_add_images_to_batch(
    batch_id: RowId,
    files: UploadFiles,
    session: SessionDep,
    present: PresenterDep,
    settings: SettingsDep,
    response: Response,
) -> Response:
    """Upload images and add them, new and duplicate alike, to the batch."""
    batch, report = batch_service.upload_to_batch(session, settings, batch_id, incoming(files))
    report_rejections(response, report)
    rejected = [RejectedFile(filename=r.filename, reason=r.reason) for r in report.rejected]
    return present.batch(batch, headers=response.headers, rejected=rejected)


@router.put(
    "/{batch_id}/analyze",
    operation_id="analyzeBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404, 409, 500, 503),
)
def analyze_batch(
    batch_id: RowId,
    session: ReadSessionDep,
    pool: ClusteringPoolDep,
    view: BatchViewDep,
    body: AnalyzeRequest | None = None,
) -> Response:
    """Group the batch's images into moments (capture time per camera, then looks); rank each."""
    params = body or AnalyzeRequest()
    # The analysis runs, and its answer is encoded, on the analysis pool (a worker process by
    # default); this process relays the bytes.
    answer = analysis_service.analyze_batch(
        session,
        pool,
        batch_id,
        AnalysisParameters(
            params.min_cluster_size,
            params.min_samples,
            params.metric,
            params.time_gap_seconds,
            params.use_capture_time,
        ),
        Presenter.image_columns(),
        view.kind,
        functools.partial(encoded_batch_answer, view),
    )
    return Response(answer.body, headers=answer.headers, media_type="application/json")


@router.put(
    "/{batch_id}/groups",
    operation_id="updateGroupsInBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
def update_groups_in_batch(
    batch_id: RowId, body: GroupsUpdate, session: SessionDep, present: PresenterDep
) -> Response:
    """Set the groups by hand: `group_map` must list every image of the batch once."""
    batch = analysis_service.update_groups(session, batch_id, body.group_map)
    return present.batch(batch)


@router.post(
    "/{batch_id}/groups/{group_label:path}/rank",
    operation_id="rankGroupImages",
    response_model=BatchResponse,
    responses=error_responses(404),
)
def rank_group_images(
    batch_id: RowId, group_label: str, session: SessionDep, present: PresenterDep
) -> Response:
    """Re-rank one group by quality (label URL-encoded); rank 1 is the suggested keeper."""
    return present.batch(analysis_service.rank_group(session, batch_id, group_label))


Stars = Annotated[int, Query(ge=-1, le=5, description="-1 rejected, 0 unrated, 1..5 stars")]


@router.get(
    "/{batch_id}/export",
    operation_id="exportBatch",
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}, "application/zip": {}}},
        **error_responses(404),
    },
)
def export_batch(
    batch_id: RowId,
    session: ReadSessionDep,
    settings: SettingsDep,
    format: Literal["csv", "json", "xmp"] = "csv",
    keeper_rating: Stars = 5,
    other_rating: Stars = 2,
    ungrouped_rating: Stars = 3,
    keeper_label: xmp_export.Label = "Green",
    other_label: xmp_export.Label = "Red",
    ungrouped_label: xmp_export.Label = "Yellow",
    naming: Annotated[
        xmp_export.Naming | None,
        Query(
            description="basename: IMG_0001.xmp (Lightroom, Capture One); full: "
            "IMG_0001.CR2.xmp (darktable, digiKam). Default: the editor's, else basename."
        ),
    ] = None,
    editor: Annotated[
        xmp_export.Editor | None,
        Query(description="Name sidecars as this editor reads them (see `naming`)."),
    ] = None,
    embed: Annotated[
        bool,
        Query(
            description="xmp: copies of JPEG, TIFF and DNG originals with the XMP inside "
            "(lossless), sidecars for the other files (RAW)."
        ),
    ] = False,
) -> Response:
    """Export the batch as CSV or JSON rows, or as a zip of XMP sidecars (ratings, labels)."""
    disposition = f'attachment; filename="batch-{batch_id}.{"zip" if format == "xmp" else format}"'
    if format == "xmp":
        options = xmp_export.XmpOptions(
            keeper_rating=keeper_rating,
            other_rating=other_rating,
            ungrouped_rating=ungrouped_rating,
            keeper_label=keeper_label,
            other_label=other_label,
            ungrouped_label=ungrouped_label,
            naming=naming or xmp_export.EDITOR_NAMING.get(editor or "lightroom", "basename"),
        )
        if embed:
            members = picks_export.plan(session, settings, batch_id, options)
            return StreamingResponse(
                picks_export.stream_zip(members),
                media_type="application/zip",
                headers={"Content-Disposition": disposition},
            )
        return Response(
            xmp_export.sidecars_zip(session, batch_id, options),
            media_type="application/zip",
            headers={"Content-Disposition": disposition},
        )
    rows = export_service.export_rows(session, batch_id)
    if format == "json":
        return JSONResponse(rows, headers={"Content-Disposition": disposition})
    return Response(
        export_service.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )


@router.get(
    "/{batch_id}/contact-sheet",
    operation_id="getBatchContactSheet",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404)},
)
def get_batch_contact_sheet(
    batch_id: RowId,
    session: ReadSessionDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 48,
    group: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Response:
    """A JPEG of the batch's groups, keeper first and marked; pages of `per_page` images."""
    sheet = contact_sheet.render(session, settings, batch_id, page, per_page, group)
    headers = {
        "Content-Disposition": f'inline; filename="batch-{batch_id}-contact-sheet-{page}.jpg"',
        "X-Page": str(sheet.page),
        "X-Total-Pages": str(sheet.pages),
    }
    return Response(sheet.jpeg, media_type="image/jpeg", headers=headers)
