"""Endpoints under /batches: grouping batches of images."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Query, Response, status
from fastapi.responses import JSONResponse

from api.deps import (
    EmbedderDep,
    PresenterDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    WorkerDep,
    require_api_key,
)
from api.image_routes import UploadFiles, incoming, report_rejections
from api.schemas import (
    MAX_SAFE_INTEGER,
    AnalyzeRequest,
    BatchCreate,
    BatchRename,
    BatchResponse,
    GroupsUpdate,
    ImageIds,
    MessageResponse,
    RowId,
    error_responses,
    json_response,
)
from api.tasks import active_model_id, queue_image_processing
from services import analysis_service, batch_service, export_service
from services.analysis_service import AnalysisParameters

router = APIRouter(
    prefix="/batches",
    tags=["Grouping Batches"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401),
)


@router.post(
    "/",
    operation_id="createBatch",
    response_model=BatchResponse,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 404),
)
def create_batch(body: BatchCreate, session: SessionDep, present: PresenterDep) -> Response:
    """Create a batch from existing images."""
    batch = batch_service.create_batch(session, body.name, body.image_ids)
    return present.batch(batch, status_code=status.HTTP_201_CREATED)


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
def get_batch(batch_id: RowId, session: ReadSessionDep, present: PresenterDep) -> Response:
    """One batch; images ordered by group, then quality rank, then id."""
    return present.batch_page(batch_service.batch_page(session, batch_id, present.image_columns()))


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
    return present.batch(batch_service.add_images(session, batch_id, body.image_ids))


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
    worker: WorkerDep,
    background_tasks: BackgroundTasks,
    response: Response,
) -> Response:
    """Upload images and add them, new and duplicate alike, to the batch."""
    batch, report = batch_service.upload_to_batch(session, settings, batch_id, incoming(files))
    background_tasks.add_task(queue_image_processing, worker, report.new_image_ids)
    report_rejections(response, report)
    return present.batch(batch, headers=response.headers)


@router.put(
    "/{batch_id}/analyze",
    operation_id="analyzeBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404, 409, 500, 503),
)
def analyze_batch(
    batch_id: RowId,
    session: SessionDep,
    present: PresenterDep,
    embedder: EmbedderDep,
    body: AnalyzeRequest | None = None,
) -> Response:
    """Group the batch's images into similar shots (HDBSCAN) and rank each group."""
    params = body or AnalyzeRequest()
    batch = analysis_service.analyze_batch(
        session,
        batch_id,
        AnalysisParameters(
            params.min_cluster_size, params.min_samples, params.metric, params.time_gap_seconds
        ),
        active_model_id(embedder),
    )
    return present.batch(batch)


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


@router.get(
    "/{batch_id}/export",
    operation_id="exportBatch",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}, **error_responses(404)},
)
def export_batch(
    batch_id: RowId,
    session: ReadSessionDep,
    format: Literal["csv", "json"] = "csv",
) -> Response:
    """Export the batch (group, rank, keeper flag, quality, shot time per image) as CSV or JSON."""
    rows = export_service.export_rows(session, batch_id)
    disposition = f'attachment; filename="batch-{batch_id}.{format}"'
    if format == "json":
        return JSONResponse(rows, headers={"Content-Disposition": disposition})
    return Response(
        export_service.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )
