"""Endpoints under /batches: grouping batches of images."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Response, status

from api.deps import SessionDep, SettingsDep, WorkerDep, require_api_key
from api.image_routes import UploadFiles, incoming, report_rejections
from api.schemas import BatchCreate, BatchRename, BatchResponse, ImageIds, MessageResponse
from api.tasks import queue_image_processing
from services import batch_service

router = APIRouter(
    prefix="/batches", tags=["Grouping Batches"], dependencies=[Depends(require_api_key)]
)


@router.post(
    "/",
    operation_id="createBatch",
    response_model=BatchResponse,
    status_code=status.HTTP_201_CREATED,
)
def create_batch(body: BatchCreate, session: SessionDep) -> BatchResponse:
    """Create a batch from existing images."""
    batch = batch_service.create_batch(session, body.name, body.image_ids)
    return BatchResponse.from_batch(batch)


@router.get("/", operation_id="getAllBatches", response_model=list[BatchResponse])
def get_all_batches(session: SessionDep) -> list[BatchResponse]:
    """All batches with their images (a fixed number of queries, however many)."""
    return [BatchResponse.from_batch(batch) for batch in batch_service.list_batches(session)]


@router.get("/{batch_id}", operation_id="getBatch", response_model=BatchResponse)
def get_batch(batch_id: int, session: SessionDep) -> BatchResponse:
    """One batch; images ordered by group, then quality rank, then id."""
    return BatchResponse.from_batch(batch_service.get_batch(session, batch_id))


@router.put("/{batch_id}", operation_id="renameBatch", response_model=BatchResponse)
def rename_batch(batch_id: int, body: BatchRename, session: SessionDep) -> BatchResponse:
    """Rename a batch."""
    return BatchResponse.from_batch(batch_service.rename_batch(session, batch_id, body.name))


@router.delete("/{batch_id}", operation_id="deleteBatch", response_model=MessageResponse)
def delete_batch(batch_id: int, session: SessionDep) -> MessageResponse:
    """Delete a batch; its images stay."""
    batch_service.delete_batch(session, batch_id)
    return MessageResponse(message=f"Batch {batch_id} deleted.")


@router.post("/{batch_id}/images", operation_id="addImagesToBatch", response_model=BatchResponse)
def add_images_to_batch(batch_id: int, body: ImageIds, session: SessionDep) -> BatchResponse:
    """Add existing images to a batch; members keep their labels."""
    return BatchResponse.from_batch(batch_service.add_images(session, batch_id, body.image_ids))


@router.delete(
    "/{batch_id}/images", operation_id="removeImagesFromBatch", response_model=BatchResponse
)
def remove_images_from_batch(
    batch_id: int, session: SessionDep, body: ImageIds = Body()
) -> BatchResponse:
    """Remove images from a batch (JSON body); the rest keep their labels."""
    batch = batch_service.remove_images(session, batch_id, body.image_ids)
    return BatchResponse.from_batch(batch)


@router.post(
    "/{batch_id}/upload-and-add",
    operation_id="uploadAndAddImagesToBatch",
    response_model=BatchResponse,
)
def upload_and_add_images_to_batch(
    batch_id: int,
    files: UploadFiles,
    session: SessionDep,
    settings: SettingsDep,
    worker: WorkerDep,
    background_tasks: BackgroundTasks,
    response: Response,
) -> BatchResponse:
    """Upload images and add them, new and duplicate alike, to the batch."""
    batch, report = batch_service.upload_to_batch(session, settings, batch_id, incoming(files))
    background_tasks.add_task(queue_image_processing, worker, report.new_image_ids)
    report_rejections(response, report)
    return BatchResponse.from_batch(batch)
