"""Endpoints under /batches: grouping batches of images."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Body, Depends, Response, status
from fastapi.responses import JSONResponse

from api.deps import (
    EmbedderDep,
    PresenterDep,
    SessionDep,
    SettingsDep,
    in_threadpool,
    require_api_key,
)
from api.image_routes import UploadFiles, incoming, report_rejections
from api.schemas import (
    AnalyzeRequest,
    BatchCreate,
    BatchRename,
    BatchResponse,
    GroupsUpdate,
    ImageIds,
    MessageResponse,
    RowId,
    error_responses,
)
from services import analysis_service, batch_service, export_service
from services.analysis_service import AnalysisParameters
from services.background.wiring import active_model_id

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
@in_threadpool
def create_batch(body: BatchCreate, session: SessionDep, present: PresenterDep) -> BatchResponse:
    """Create a batch from existing images."""
    batch = batch_service.create_batch(session, body.name, body.image_ids)
    return present.batch(batch)


@router.get("/", operation_id="getAllBatches", response_model=list[BatchResponse])
@in_threadpool
def get_all_batches(session: SessionDep, present: PresenterDep) -> list[BatchResponse]:
    """All batches with their images (a fixed number of queries, however many)."""
    return [present.batch(batch) for batch in batch_service.list_batches(session)]


@router.get(
    "/{batch_id}",
    operation_id="getBatch",
    response_model=BatchResponse,
    responses=error_responses(404),
)
@in_threadpool
def get_batch(batch_id: RowId, session: SessionDep, present: PresenterDep) -> BatchResponse:
    """One batch; images ordered by group, then quality rank, then id."""
    return present.batch(batch_service.get_batch(session, batch_id))


@router.put(
    "/{batch_id}",
    operation_id="renameBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
@in_threadpool
def rename_batch(
    batch_id: RowId, body: BatchRename, session: SessionDep, present: PresenterDep
) -> BatchResponse:
    """Rename a batch."""
    return present.batch(batch_service.rename_batch(session, batch_id, body.name))


@router.delete(
    "/{batch_id}",
    operation_id="deleteBatch",
    response_model=MessageResponse,
    responses=error_responses(404),
)
@in_threadpool
def delete_batch(batch_id: RowId, session: SessionDep) -> MessageResponse:
    """Delete a batch; its images stay."""
    batch_service.delete_batch(session, batch_id)
    return MessageResponse(message=f"Batch {batch_id} deleted.")


@router.post(
    "/{batch_id}/images",
    operation_id="addImagesToBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
@in_threadpool
def add_images_to_batch(
    batch_id: RowId, body: ImageIds, session: SessionDep, present: PresenterDep
) -> BatchResponse:
    """Add existing images to a batch; members keep their labels."""
    return present.batch(batch_service.add_images(session, batch_id, body.image_ids))


@router.delete(
    "/{batch_id}/images",
    operation_id="removeImagesFromBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
@in_threadpool
def remove_images_from_batch(
    batch_id: RowId, session: SessionDep, present: PresenterDep, body: ImageIds = Body()
) -> BatchResponse:
    """Remove images from a batch (JSON body); the rest keep their labels."""
    batch = batch_service.remove_images(session, batch_id, body.image_ids)
    return present.batch(batch)


@router.post(
    "/{batch_id}/upload-and-add",
    operation_id="uploadAndAddImagesToBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404, 413),
)
@in_threadpool
def upload_and_add_images_to_batch(
    batch_id: RowId,
    files: UploadFiles,
    session: SessionDep,
    present: PresenterDep,
    settings: SettingsDep,
    response: Response,
) -> BatchResponse:
    """Upload images and add them, new and duplicate alike, to the batch."""
    batch, report = batch_service.upload_to_batch(session, settings, batch_id, incoming(files))
    report_rejections(response, report)
    return present.batch(batch)


@router.put(
    "/{batch_id}/analyze",
    operation_id="analyzeBatch",
    response_model=BatchResponse,
    responses=error_responses(400, 404, 409, 500, 503),
)
@in_threadpool
def analyze_batch(
    batch_id: RowId,
    session: SessionDep,
    present: PresenterDep,
    embedder: EmbedderDep,
    body: AnalyzeRequest | None = None,
) -> BatchResponse:
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
@in_threadpool
def update_groups_in_batch(
    batch_id: RowId, body: GroupsUpdate, session: SessionDep, present: PresenterDep
) -> BatchResponse:
    """Set the groups by hand: `group_map` must list every image of the batch once."""
    batch = analysis_service.update_groups(session, batch_id, body.group_map)
    return present.batch(batch)


@router.post(
    "/{batch_id}/groups/{group_label:path}/rank",
    operation_id="rankGroupImages",
    response_model=BatchResponse,
    responses=error_responses(404),
)
@in_threadpool
def rank_group_images(
    batch_id: RowId, group_label: str, session: SessionDep, present: PresenterDep
) -> BatchResponse:
    """Re-rank one group by quality (label URL-encoded); rank 1 is the suggested keeper."""
    return present.batch(analysis_service.rank_group(session, batch_id, group_label))


@router.get(
    "/{batch_id}/export",
    operation_id="exportBatch",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}, **error_responses(404)},
)
@in_threadpool
def export_batch(
    batch_id: RowId,
    session: SessionDep,
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
