"""``trailseal search-index``: per-tenant IVFFlat indexes for vector search (built as the schema
owner, like ``trailseal migrate``)."""

from __future__ import annotations

import click

from .helpers import make_services, tenant_targets

__all__ = ["search_index"]


def _admin_url(svc) -> str:
    from ..db import libpq_url

    url = svc.config.get("ADMIN_DATABASE_URL")
    if not url:
        raise click.ClickException(
            "set TRAILSEAL_ADMIN_DATABASE_URL (the schema owner): indexes are built by the "
            "owner of audit_embeddings")
    return libpq_url(url)


@click.group("search-index")
def search_index() -> None:
    """Per-tenant vector indexes: search in a large tenant without scanning every vector."""


@search_index.command("list")
def list_cmd() -> None:
    """Each tenant's vectors per model, and its index if it has one."""
    from ..services.vector_index import DEFAULT_MIN_EMBEDDINGS, embedding_counts, list_indexes

    svc = make_services()
    url = _admin_url(svc)
    indexes = {(ix.tenant_id, ix.model, ix.dims): ix for ix in list_indexes(url)}
    click.echo("tenant,model,dims,vectors,index,valid,index_bytes")
    floor = int(svc.config.get("SEARCH_INDEX_MIN_VECTORS") or DEFAULT_MIN_EMBEDDINGS)
    for tenant, model, dims, count in embedding_counts(url):
        ix = indexes.pop((tenant, model, dims), None)
        hint = "" if ix or count < floor else "(none: worth building)"
        click.echo(f"{tenant},{model},{dims},{count},{ix.name if ix else hint},"
                   f"{ix.valid if ix else ''},{ix.size_bytes if ix else ''}")
    for ix in indexes.values():  # an index whose tenant has no vectors left
        click.echo(f"{ix.tenant_id},{ix.model},{ix.dims},0,{ix.name},{ix.valid},{ix.size_bytes}")


@search_index.command("build")
@click.option("--tenant", "tenant_ref", help="Tenant slug or id.")
@click.option("--all", "all_tenants", is_flag=True,
              help="Every tenant with at least --min-vectors vectors of a model.")
@click.option("--min-vectors", type=click.IntRange(min=1), default=None,
              help="With --all: the smallest tenant worth an index (default "
                   "TRAILSEAL_SEARCH_INDEX_MIN_VECTORS, 100000).")
@click.option("--rebuild", is_flag=True,
              help="Build again even where a valid index exists (its lists are centred on "
                   "the vectors of its build: rebuild once they have doubled).")
@click.option("--lists", type=click.IntRange(min=1, max=32768), default=None,
              help="IVFFlat lists (default: vectors / 1000, at least 10).")
@click.option("--maintenance-work-mem", default=None,
              help="Memory for the build (default: enough for its k-means sample).")
def build_cmd(tenant_ref: str | None, all_tenants: bool, min_vectors: int | None,
              rebuild: bool, lists: int | None, maintenance_work_mem: str | None) -> None:
    """Build the IVFFlat index of a tenant's vectors (every model it has), without blocking
    writes. Already built indexes are left as they are unless --rebuild."""
    from ..services.vector_index import DEFAULT_MIN_EMBEDDINGS, build_index, embedding_counts

    if min_vectors is not None and not all_tenants:
        raise click.UsageError("--min-vectors goes with --all")
    svc, targets_given = tenant_targets(tenant_ref, all_tenants)
    url = _admin_url(svc)
    wanted = str(targets_given[0]) if tenant_ref else None
    floor = min_vectors or int(svc.config.get("SEARCH_INDEX_MIN_VECTORS")
                               or DEFAULT_MIN_EMBEDDINGS)
    counts = embedding_counts(url)
    targets = ([c for c in counts if c[0] == wanted] if wanted
               else [c for c in counts if c[3] >= floor])
    if not targets:
        click.echo("nothing to index" + (" (the tenant has no vectors yet)" if wanted else
                                         f" (no tenant has {floor} vectors of a model)"))
        return
    for tenant, model, dims, count in targets:
        name, seconds, built = build_index(url, tenant, model, dims, vectors=count,
                                           lists=lists, rebuild=rebuild,
                                           maintenance_work_mem=maintenance_work_mem)
        state = f"built in {seconds:.1f} s" if built else "already built"
        click.echo(f"tenant {tenant}: {model} ({dims} dims, {count} vectors): {name} {state}")


@search_index.command("drop")
@click.argument("name")
def drop_cmd(name: str) -> None:
    """Drop a per-tenant index by name (search falls back to the exact scan)."""
    from ..services.vector_index import drop_index

    svc = make_services()
    try:
        existed = drop_index(_admin_url(svc), name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"dropped {name}" if existed else f"no index named {name}")
