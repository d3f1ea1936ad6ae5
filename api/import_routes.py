"""Endpoints under /imports: cards and folders imported in place (no copy)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status

from api.deps import ReadSessionDep, SessionDep, SettingsDep, require_api_key
from api.import_schemas import ImportFailure, ImportRequest, ImportResponse, SidecarsResponse
from api.schemas import RowId, error_responses, json_response
from config import Settings
from services import import_service, import_sidecars, xmp_export

router = APIRouter(
    prefix="/imports",
    tags=["Imports"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 503),
)


def _run(request: Request, settings: Settings, import_id: int) -> None:
    import_service.run_import(request.app.state.session_factory, settings, import_id)


@router.post(
    "",
    operation_id="importFolder",
    response_model=ImportResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(400, 403, 404),
)
def import_folder(
    body: ImportRequest,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    tasks: BackgroundTasks,
) -> Response:
    """Import a folder on the server (under IMPORT_ROOTS) in place, into a new batch: files are
    hashed and processed where they are, nothing is copied. Deleting such an image later
    removes only the server's rows, thumbnail and vector, never the photographer's file."""
    folder_import = import_service.start_import(session, settings, body.path, body.batch_name)
    tasks.add_task(_run, request, settings, folder_import.id)
    page = ImportResponse.of(folder_import, {})
    return json_response(page.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)


@router.get(
    "/{import_id}",
    operation_id="getImport",
    response_model=ImportResponse,
    responses=error_responses(404),
)
def get_import(import_id: RowId, session: ReadSessionDep) -> Response:
    """An import's progress: files found, done, failed, per second; originals changed or
    missing since."""
    folder_import = import_service.get_import(session, import_id)
    sources = import_service.source_report(session, folder_import)
    return json_response(ImportResponse.of(folder_import, sources).model_dump(mode="json"))


@router.post(
    "/{import_id}/sidecars",
    operation_id="writeImportSidecars",
    response_model=SidecarsResponse,
    responses=error_responses(404, 409),
)
def write_import_sidecars(
    import_id: RowId,
    session: ReadSessionDep,
    editor: Annotated[
        xmp_export.Editor | None,
        Query(description="Name sidecars as this editor reads them (default: lightroom)."),
    ] = None,
    naming: Annotated[
        xmp_export.Naming | None,
        Query(description="basename: IMG_0001.xmp; full: IMG_0001.CR2.xmp (wins over editor)."),
    ] = None,
    overwrite: Annotated[
        bool,
        Query(description="Replace a sidecar that is already there instead of merging into it."),
    ] = False,
) -> Response:
    """Write the batch's picks as XMP sidecars beside the imported originals (write_sidecars):
    a sidecar already there is merged into (theirs kept, ours added), replaced only with
    `overwrite=true`. Only sidecars are written; the photos are never touched."""
    options = xmp_export.XmpOptions(
        naming=naming or xmp_export.EDITOR_NAMING.get(editor or "lightroom", "basename")
    )
    report = import_sidecars.write_sidecars(session, import_id, options, overwrite=overwrite)
    page = SidecarsResponse(
        written=report.written,
        merged=report.merged,
        skipped=[ImportFailure(**item) for item in report.skipped],
    )
    return json_response(page.model_dump(mode="json"))
