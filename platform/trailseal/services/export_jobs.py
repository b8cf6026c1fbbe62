"""Document exports (PDF) too large to write while the client waits: written by a worker, kept
in Redis for ``EXPORT_FILE_HOURS`` and downloaded from ``GET /api/v1/export/jobs/{id}/file``.

An export job remembers its tenant, format, filters and the chain head fixed when it was
asked for, so the file holds exactly the events the request matched. Status and file live
under ``trailseal:export:<tenant>:<job id>`` (a hash) and ``…:file`` (the bytes); both expire
together, and a job id of another tenant is simply not found.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import Conflict, NotFound
from ..schemas import ExportFilters
from .access import AccessRecord, record_read
from .chain import format_ts
from .exports import ExportScope, export_scope, filters_for_log, find_exporter, iter_events
from .integrity import verify_chain
from .tenancy import Principal

log = logging.getLogger(__name__)

EXPORT_JOB = "trailseal.jobs.exports.write_export"


def _key(tenant_id: uuid.UUID | str, job_id: str) -> str:
    return f"trailseal:export:{tenant_id}:{job_id}"


def _ttl(svc) -> int:
    return int(float(svc.config["EXPORT_FILE_HOURS"]) * 3600)


def start_export_job(svc, principal: Principal, format_name: str, filters: ExportFilters,
                     scope: ExportScope, event_count: int) -> dict[str, Any]:
    """Queue the writing of a document export; its status (``queued``)."""
    job_id = str(uuid.uuid4())
    key = _key(principal.tenant_id, job_id)
    meta = {
        "id": job_id, "format": format_name, "status": "queued",
        "filters": orjson.dumps(filters_for_log(filters)).decode(),
        "head_seq": str(scope.head_seq), "event_count": str(event_count),
        "requested_by": f"{principal.kind}:{principal.id}",
        "requested_at": format_ts(datetime.now(UTC)),
    }
    pipe = svc.redis.pipeline()
    pipe.hset(key, mapping=meta)
    pipe.expire(key, _ttl(svc))
    pipe.execute()
    svc.queues["default"].enqueue(EXPORT_JOB, str(principal.tenant_id), job_id,
                                  job_id=f"export-{job_id}", job_timeout=3600,
                                  result_ttl=3600, failure_ttl=7 * 86400)
    return _status(meta)


def _status(meta: dict[str, Any]) -> dict[str, Any]:
    done = meta["status"] == "done"
    return {
        "id": meta["id"], "format": meta["format"], "status": meta["status"],
        "filters": orjson.loads(meta["filters"]), "event_count": int(meta["event_count"]),
        "head_seq": int(meta["head_seq"]), "requested_by": meta["requested_by"],
        "requested_at": meta["requested_at"], "finished_at": meta.get("finished_at"),
        "size": int(meta["size"]) if meta.get("size") else None,
        "error": meta.get("error") or None,
        "download_url": f"/api/v1/export/jobs/{meta['id']}/file" if done else None,
    }


def _meta(svc, tenant_id: uuid.UUID | str, job_id: str) -> dict[str, Any]:
    raw = svc.redis.hgetall(_key(tenant_id, job_id)) if len(job_id) <= 64 else {}
    if not raw:
        shown = job_id if len(job_id) <= 64 else job_id[:64] + "…"
        raise NotFound(f"no export job {shown!r} (finished files are kept "
                       f"{svc.config['EXPORT_FILE_HOURS']} hours)")
    return {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in raw.items()}


def write_export(svc, tenant_id: str, job_id: str) -> str:
    """Write the file of export job ``job_id`` (the worker's part); its final status. Running
    it again rewrites the same file (the scope is fixed), so a retried job is harmless."""
    key = _key(tenant_id, job_id)
    meta = _meta(svc, tenant_id, job_id)
    svc.redis.hset(key, "status", "running")
    try:
        exporter = find_exporter(svc.pm, meta["format"])
        filters = ExportFilters.model_validate(orjson.loads(meta["filters"]))
        scope = export_scope(svc, uuid.UUID(tenant_id), filters, int(meta["head_seq"]),
                             meta["requested_by"])
        report = verify_chain(svc, uuid.UUID(tenant_id))
        context = {**scope.context, "event_count": int(meta["event_count"]),
                   "chain": report.to_dict()}
        with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
            exporter.export(iter_events(svc, scope), context, spool)
            spool.seek(0)
            data = spool.read()
    except Exception as exc:
        log.exception("export job %s of tenant %s failed", job_id, tenant_id)
        svc.redis.hset(key, mapping={"status": "failed", "error": str(exc)[:500] or
                                     type(exc).__name__,
                                     "finished_at": format_ts(datetime.now(UTC))})
        raise
    pipe = svc.redis.pipeline()
    pipe.set(key + ":file", data, ex=_ttl(svc))
    pipe.hset(key, mapping={"status": "done", "size": str(len(data)),
                            "finished_at": format_ts(datetime.now(UTC)), "error": ""})
    pipe.expire(key, _ttl(svc))
    pipe.execute()
    return "done"


def read_export_job(svc, principal: Principal, job_id: str,
                    access: AccessRecord) -> dict[str, Any]:
    """The status of an export job of the caller's tenant (404 for any other id)."""
    record_read(svc, principal, access)
    return _status(_meta(svc, principal.tenant_id, job_id))


def read_export_file(svc, principal: Principal, job_id: str,
                     access: AccessRecord) -> tuple[bytes, str, str]:
    """(bytes, media type, file name) of a finished export job; 409 while it is not done."""
    record_read(svc, principal, access)
    meta = _meta(svc, principal.tenant_id, job_id)
    if meta["status"] != "done":
        raise Conflict(f"export job {job_id} is {meta['status']}; download it once its status "
                       "is done", {"status": meta["status"]})
    data = svc.redis.get(_key(principal.tenant_id, job_id) + ":file")
    if data is None:
        raise NotFound(f"the file of export job {job_id} has expired")
    exporter = find_exporter(svc.pm, meta["format"])
    stamp = meta["requested_at"][:19].replace(":", "").replace("-", "")
    name = f"trailseal-export-{stamp}.{getattr(exporter, 'extension', exporter.name)}"
    return data, exporter.media_type, name
