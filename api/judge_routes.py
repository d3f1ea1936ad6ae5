"""Endpoints of the judge that learns the photographer's taste (opt-in, for the library)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from api.deps import ReadSessionDep, SessionDep, require_api_key
from api.judge_schemas import JudgeResponse
from api.schemas import error_responses, json_response
from services import judge_service
from services.judge_service import JudgeState

router = APIRouter(
    prefix="/judge",
    tags=["Judge"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 503),
)


def _answer(state: JudgeState) -> Response:
    return json_response(JudgeResponse.model_validate(state, from_attributes=True).model_dump())


@router.get("", operation_id="getJudge", response_model=JudgeResponse)
def get_judge(session: ReadSessionDep) -> Response:
    """The weights that rank, the fitted ones, and how often each agreed with held-back choices."""
    return _answer(judge_service.judge_state(session))


@router.post(
    "/fit", operation_id="fitJudge", response_model=JudgeResponse, responses=error_responses(409)
)
def fit_judge(session: SessionDep) -> Response:
    """Fit the judge's weights to the keepers you chose and the frames you rejected; the library
    is ranked again with them, unless they agree less often than the default with your
    held-back choices."""
    return _answer(judge_service.fit_judge(session))


@router.delete("", operation_id="resetJudge", response_model=JudgeResponse)
def reset_judge(session: SessionDep) -> Response:
    """Back to the default judge: the fitted weights are forgotten, the library ranked again."""
    return _answer(judge_service.reset_judge(session))
