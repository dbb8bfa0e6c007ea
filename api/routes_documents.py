"""Routes for editors and other services: add, replace, read and delete documents; poll upload jobs.

A document arrives as a multipart file upload or as JSON text. One small file is written before the
response (201); several files, or one over ``sync_upload_bytes``, run as a job (202 + ``Location``).

Every route needs an editor's key (api/auth.py) and works inside its tenant: ids in paths and
uploads are the tenant's own (retrieval/scope.py ``qualify``), and another tenant's document or job
is a 404 exactly like one that does not exist. A public key sees only public documents.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.auth import Caller, DocumentsCaller, JobsCaller
from api.deps import DocumentsDep, EngineDep, RegistryDep, SettingsDep
from api.errors import (
    DocumentRejectedError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaError,
    WriterBusyApiError,
)
from api.limits import retry_after_header
from api.models import (
    DOCUMENT_FORMATS,
    ChunkView,
    DocumentDetail,
    DocumentReplacement,
    DocumentSummary,
    DocumentText,
    ErrorResponse,
    FileOutcome,
    JobView,
)
from ingest.pipeline import FileResult, Outcome, Placement
from ingest.service import DocumentService, Job, Upload, WriterBusyError, id_problem, name_problem
from retrieval.config import Settings
from retrieval.registry import DocumentRecord
from retrieval.scope import PUBLIC, TENANT_SEPARATOR, ScopeError, local_id, qualify, tenant_of

router = APIRouter(tags=["documents"])

DocumentId = Annotated[
    str,
    Path(
        description="Document id, e.g. en/faq-refunds; any Unicode, percent-encoded "
        "(en/Refund%20policy, ru/%D0%92%D0%BE%D0%B7%D0%B2%D1%80%D0%B0%D1%82)."
    ),
]


def nfc_id(document_id: str) -> str:
    """Ids are compared in Unicode NFC everywhere (folder ingestion too): a name typed or saved
    decomposed (macOS) names the same document."""
    return unicodedata.normalize("NFC", document_id)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        401: "No API key, or an unknown or revoked one.",
        403: "The key's role may not use this endpoint.",
        429: "Too many requests for this key; see Retry-After.",
        404: "No such document or job.",
        409: "A document with this id already exists (POST).",
        413: "The request or a file is over the size limit.",
        415: "Send multipart/form-data or application/json.",
        422: "The file was refused; `code` names the reason (invalid_id, content_mismatch, invalid_utf8, …).",
        503: "Other writes kept this one from starting in time (`writer_busy`, DELETE); see Retry-After.",
    }.items()
}
_JOB_CHANGES: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"model": ErrorResponse, "description": "Not in this job's state (`job_finished`, `job_not_failed`)."},
}
# What a write answers: the file's outcome now (200 replaced, 201 added), or a job to poll (202).
_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    200: {"model": FileOutcome, "description": "The document was replaced (PUT)."},
    201: {"model": FileOutcome, "description": "The document was added."},
    202: {"model": JobView, "description": "Several or large files: a job; poll the `Location` URL."},
}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                }
            },
            "application/json": {"schema": DocumentText.model_json_schema()},
        }
    }
}


def is_document_upload(method: str, path: str) -> bool:
    """Requests that carry documents: they may be up to ``max_request_bytes`` (api/limits.py)."""
    return method in {"POST", "PUT"} and (path == "/v1/documents" or path.startswith("/v1/documents/"))


@router.post("/v1/documents", status_code=201, responses=_WRITE_RESPONSES, openapi_extra=_UPLOAD_BODY)
async def create_documents(
    request: Request, caller: DocumentsCaller, service: DocumentsDep, settings: SettingsDep
) -> Response:
    """Add documents: upload files (multipart, field `file`, repeatable) or send JSON text.

    The document id is the front matter's `id` or the file name without extension (folders kept:
    `en/faq-invoices.md` → `en/faq-invoices`). An id that exists already is refused with 409.
    """
    uploads, document_id = await _read_body(request, settings, DocumentText)
    return await _write(service, settings, uploads, document_id, caller, must_be_new=True)


@router.put("/v1/documents/{document_id:path}", responses=_WRITE_RESPONSES, openapi_extra=_UPLOAD_BODY)
async def replace_document(
    document_id: DocumentId,
    request: Request,
    caller: DocumentsCaller,
    registry: RegistryDep,
    service: DocumentsDep,
    settings: SettingsDep,
) -> Response:
    """Replace a document (or create it) with one uploaded file or JSON text; its version increments.

    Readers see the old version until the new one is complete, never a mix of both.
    """
    document_id = nfc_id(document_id)
    local_id = _local_id(caller, document_id)
    _check_id(local_id)
    existing = await run_in_threadpool(registry.get, qualify(caller.tenant, local_id))
    if existing is not None and not visible_to(caller, existing):
        # A public key may not overwrite an internal document it cannot even read.
        raise NotFoundError(f"no document {document_id!r}", "document_not_found")
    uploads, _ = await _read_body(request, settings, DocumentReplacement, local_id)
    if len(uploads) != 1:
        raise DocumentRejectedError(f"send exactly one file to replace {document_id!r}", "one_file_expected")
    return await _write(service, settings, uploads, local_id, caller, must_be_new=False)


@router.get("/v1/documents/{document_id:path}", response_model=DocumentDetail, responses=_ERRORS)
async def get_document(
    document_id: DocumentId, caller: DocumentsCaller, registry: RegistryDep, engine: EngineDep
) -> DocumentDetail:
    """A document's metadata, live version and chunks."""
    record = await run_in_threadpool(_visible, registry.get, caller, nfc_id(document_id))
    chunks = await run_in_threadpool(engine.store.chunks_of, record.document_id, record.version)
    return DocumentDetail(
        **DocumentSummary.fields_from(record),
        metadata=record.extra,
        chunk_details=[
            ChunkView(chunk_id=local_id(c.chunk_id), position=c.position, section=c.section, kind=c.kind, text=c.text)
            for c in chunks
        ],
    )


@router.delete("/v1/documents/{document_id:path}", status_code=204, responses=_ERRORS)
async def delete_document(
    document_id: DocumentId,
    caller: DocumentsCaller,
    registry: RegistryDep,
    service: DocumentsDep,
    settings: SettingsDep,
) -> Response:
    """Delete a document: it leaves answers at once, its chunks are removed right after."""
    record = await run_in_threadpool(_visible, registry.get, caller, nfc_id(document_id))
    try:
        deleted = await run_in_threadpool(service.delete, record.document_id, settings.sync_write_seconds)
    except WriterBusyError as exc:
        raise WriterBusyApiError(str(exc), retry_after_header(settings.sync_write_seconds)) from exc
    if not deleted:
        raise NotFoundError(f"no document {document_id!r}", "document_not_found")
    return Response(status_code=204)


@router.get("/v1/jobs/{job_id}", response_model=JobView, responses=_ERRORS, tags=["jobs"])
async def get_job(job_id: str, caller: JobsCaller, service: DocumentsDep) -> JobView:
    """Progress and per-file results of an upload job (kept in the database: any replica answers)."""
    return job_view(await run_in_threadpool(_caller_job, service, caller, job_id))


@router.delete("/v1/jobs/{job_id}", response_model=JobView, responses=_JOB_CHANGES, tags=["jobs"])
async def cancel_job(job_id: str, caller: JobsCaller, service: DocumentsDep) -> JobView:
    """Cancel a job: files not started yet are not written (result code `cancelled`), the file being
    written finishes. 409 `job_finished` when it has finished already."""
    await run_in_threadpool(_caller_job, service, caller, job_id)
    return job_view(await run_in_threadpool(service.cancel, job_id))


@router.post("/v1/jobs/{job_id}/retry", status_code=202, response_model=JobView, responses=_JOB_CHANGES, tags=["jobs"])
async def retry_job(job_id: str, caller: JobsCaller, service: DocumentsDep) -> JSONResponse:
    """Queue a failed or cancelled job's failed and unwritten files again (202; poll the job). 409
    `job_not_failed` while it runs or when every file succeeded."""
    await run_in_threadpool(_caller_job, service, caller, job_id)
    return _accepted(await run_in_threadpool(service.retry, job_id))


def _caller_job(service: DocumentService, caller: Caller, job_id: str) -> Job:
    """The caller's job; another tenant's, or one with documents the key may not see, is "no job"."""
    job = service.job(job_id)
    if job is None or job.tenant != caller.tenant or not job.audiences <= caller.scope.audiences:
        raise NotFoundError(f"no job {job_id!r}", "job_not_found")
    return job


def visible_to(caller: Caller, record: DocumentRecord) -> bool:
    """The caller's tenant's document, of an audience its key may see."""
    audience = record.extra.get("audience", PUBLIC)
    return tenant_of(record.document_id) == caller.tenant and audience in caller.scope.audiences


def _visible(
    lookup: Callable[[str], DocumentRecord | None], caller: Caller, document_id: str
) -> DocumentRecord:
    """The record of the caller's ``document_id``; anything the caller may not see is "no document"."""
    try:
        record = lookup(qualify(caller.tenant, document_id))
    except ScopeError:
        record = None
    if record is None or not visible_to(caller, record):
        raise NotFoundError(f"no document {document_id!r}", "document_not_found")
    return record


def _local_id(caller: Caller, document_id: str) -> str:
    """The caller's own id for ``document_id`` (its tenant prefix, if sent, removed); an id naming
    another tenant is "no document"."""
    try:
        qualified = qualify(caller.tenant, document_id)
    except ScopeError as exc:
        raise NotFoundError(f"no document {document_id!r}", "document_not_found") from exc
    return qualified.removeprefix(f"{caller.tenant}{TENANT_SEPARATOR}")


def _check_id(document_id: str, suffix: str = "") -> None:
    """Refuse an id that cannot name a document before anything is read or written (422 ``invalid_id``)."""
    if problem := id_problem(document_id, suffix):
        raise DocumentRejectedError(problem, "invalid_id")


def job_view(job: Job) -> JobView:
    results = list(job.results)
    return JobView(
        job_id=job.job_id,
        status=job.status.value,
        created_at=job.created_at,
        finished_at=job.finished_at,
        files_total=job.files_total,
        files_done=len(results),
        results=[file_outcome(result) for result in results],
    )


def file_outcome(result: FileResult) -> FileOutcome:
    name = result.source.rsplit("/", 1)[-1]
    return FileOutcome(
        # A failed upload is named as it was sent; a path on the server only by its file name.
        file=result.source if result.outcome == Outcome.FAILED and not result.source.startswith("/") else name,
        outcome=result.outcome.value,
        document_id=local_id(result.document_id),
        version=result.version,
        chunks=result.chunks,
        code=result.code,
        error=result.error,
        note=result.note,
    )


async def _write(
    service: DocumentService,
    settings: Settings,
    uploads: list[Upload],
    document_id: str | None,
    caller: Caller,
    must_be_new: bool,
) -> Response:
    # Documents without an audience in front matter are public; a public key writes public ones only.
    placement = Placement(tenant=caller.tenant, allowed_audiences=caller.scope.audiences)
    # One small file is written now; so is one over the size limit (refused at once, unread). When
    # other writes keep it waiting past the deadline, it becomes a job (202) instead.
    if len(uploads) == 1 and not settings.sync_upload_bytes < uploads[0].length <= settings.max_file_bytes:
        problem, code = name_problem(uploads[0].filename) if document_id is None else ("", "")
        if problem:  # refused before it is read or queued
            raise DocumentRejectedError(f"{uploads[0].filename[:80]}: {problem}", code)
        written = await run_in_threadpool(
            service.write, uploads[0], document_id, must_be_new, placement, settings.sync_write_seconds
        )
        if isinstance(written, Job):
            return _accepted(written)
        result: FileResult = written
        if result.outcome == Outcome.FAILED:
            raise DocumentRejectedError(f"{uploads[0].filename}: {result.error}", result.code)
        status = 201 if result.outcome == Outcome.ADDED else 200
        return JSONResponse(file_outcome(result).model_dump(), status_code=status)
    return _accepted(service.start_job(uploads, document_id, must_be_new, placement))


def _accepted(job: Job) -> JSONResponse:
    return JSONResponse(job_view(job).model_dump(), status_code=202, headers={"Location": f"/v1/jobs/{job.job_id}"})


async def _read_body(
    request: Request, settings: Settings, text_model: type[DocumentText] | type[DocumentReplacement], url_id: str = ""
) -> tuple[list[Upload], str | None]:
    """The uploads in a multipart or JSON request, and the document id the request names."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > settings.max_request_bytes:
        limit = settings.max_request_bytes / 1e6
        raise PayloadTooLargeError(f"request is {int(length) / 1e6:.1f} MB, over the {limit:.1f} MB limit")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, settings), url_id or None
    if content_type == "application/json":
        from fastapi.exceptions import RequestValidationError

        try:
            body = text_model.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        document_id = nfc_id(body.document_id) if isinstance(body, DocumentText) else url_id
        _check_id(document_id, DOCUMENT_FORMATS[body.format])
        filename = f"{document_id}{DOCUMENT_FORMATS[body.format]}"
        return [Upload(filename, body.content.encode("utf-8"))], document_id
    raise UnsupportedMediaError(f"send multipart/form-data or application/json, not {content_type or 'nothing'}")


async def _read_multipart(request: Request, settings: Settings) -> list[Upload]:
    uploads = []
    async with request.form(max_files=1000) as form:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise DocumentRejectedError("the form has no file: send it in the field 'file'", "no_file")
        for file in files:
            name = file.filename or "(unnamed)"
            if file.size is not None and file.size > settings.max_file_bytes:
                uploads.append(Upload(name, b"", size=file.size))  # fails as too_large, unread
            else:
                uploads.append(Upload(name, await file.read()))
    return uploads
