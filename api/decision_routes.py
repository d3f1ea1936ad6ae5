"""Endpoints under /batches/{id} where the photographer decides: picks, stars, colour labels,
a group's keeper, and a cull to a target."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Response

from api.decision_schemas import (
    CullRequest,
    CullResponse,
    DecisionClear,
    DecisionUpdate,
    KeeperChoice,
)
from api.deps import PresenterDep, SessionDep, require_api_key
from api.schemas import BatchResponse, RowId, error_responses, json_response
from services import decision_service

router = APIRouter(
    prefix="/batches",
    tags=["Grouping Batches"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 503),
)


@router.put(
    "/{batch_id}/decisions",
    operation_id="setBatchDecisions",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
def set_batch_decisions(
    batch_id: RowId, body: DecisionUpdate, session: SessionDep, present: PresenterDep
) -> Response:
    """Set the photographer's pick, stars or colour label on one image or many (fields left
    out stay as they were); never overwritten by analyze, rank or cull."""
    page = decision_service.set_decisions(
        session, batch_id, body.image_ids, body.values(), present.image_columns()
    )
    return present.batch_page(page)


@router.delete(
    "/{batch_id}/decisions",
    operation_id="clearBatchDecisions",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
def clear_batch_decisions(
    batch_id: RowId,
    session: SessionDep,
    present: PresenterDep,
    body: DecisionClear | None = Body(default=None),
) -> Response:
    """Clear the photographer's decisions (of `image_ids`, or every image of the batch)."""
    ids = body.image_ids if body is not None else None
    page = decision_service.clear_decisions(session, batch_id, ids, present.image_columns())
    return present.batch_page(page)


@router.put(
    "/{batch_id}/groups/{group_label:path}/keeper",
    operation_id="chooseGroupKeeper",
    response_model=BatchResponse,
    responses=error_responses(400, 404),
)
def choose_group_keeper(
    batch_id: RowId,
    group_label: str,
    body: KeeperChoice,
    session: SessionDep,
    present: PresenterDep,
) -> Response:
    """Choose a group's keeper (label URL-encoded): it becomes rank 1, kept by the user."""
    page = decision_service.choose_keeper(
        session, batch_id, group_label, body.image_id, present.image_columns()
    )
    return present.batch_page(page)


@router.post(
    "/{batch_id}/cull",
    operation_id="cullBatch",
    response_model=CullResponse,
    responses=error_responses(400, 404),
)
def cull_batch(batch_id: RowId, body: CullRequest, session: SessionDep) -> Response:
    """Keep a share or a count of the batch (the judge chooses around the photographer's own
    decisions, which stay); stored as judge decisions."""
    result = decision_service.cull(
        session, batch_id, body.share, body.count, body.at_least_one_per_group
    )
    return json_response(CullResponse.model_validate(result, from_attributes=True).model_dump())
