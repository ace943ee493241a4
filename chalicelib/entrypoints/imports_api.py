"""Imports over HTTP: start an import (a job and a presigned upload) and watch it."""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.bootstrap import services
from chalicelib.domain.imports import ImportJob
from chalicelib.entrypoints.http_common import caller, no_body, routes
from chalicelib.entrypoints.representations import iso

__all__ = ["api", "import_job_json"]

api = Blueprint(__name__)
route = routes(api)


def import_job_json(job: ImportJob) -> dict[str, Any]:
    return {
        "job_id": job.job_id, "status": job.status, "rows_total": job.rows_total,
        "rows_imported": job.rows_imported, "rows_failed": job.rows_failed,
        "chunks_total": job.chunks_total, "chunks_done": job.chunks_done,
        "errors": [{"row": e.row, "message": e.message} for e in job.errors],
        "created_at": iso(job.created_at), "updated_at": iso(job.updated_at),
        "finished_at": iso(job.finished_at) if job.finished_at else None,
    }


@route("/imports", methods=["POST"])
def create_import() -> Response:
    who = caller(api.current_request)
    # The import takes no options: its content is the file.
    no_body(api.current_request, "POST an empty body, then upload the CSV with the returned form")
    created = services().imports.create(who)
    services().tracer.annotate(job_id=created.job.job_id, owner=who.sub)
    return Response(body={"job_id": created.job.job_id, "upload": created.upload.as_dict()}, status_code=201,
                    headers={"Location": f"/imports/{created.job.job_id}"})


@route("/imports/{job_id}", methods=["GET"])
def get_import(job_id: str) -> dict[str, Any]:
    who = caller(api.current_request)
    services().tracer.annotate(job_id=job_id, owner=who.sub)
    return import_job_json(services().imports.get(who, job_id))
