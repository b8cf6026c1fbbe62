"""``trailseal train``: train a tenant's models now. Plugins that train models add their
command to this group (``cli.commands["train"].add_command(command, "kind")``); with only
``--tenant``, every kind is trained in turn."""

from __future__ import annotations

import click


@click.group("train", invoke_without_command=True)
@click.option("--tenant", "tenant_ref", help="Tenant slug or id: train every kind of model.")
@click.pass_context
def train(ctx: click.Context, tenant_ref: str | None) -> None:
    """Train a tenant's models now (all kinds, or one: trailseal train KIND --tenant T)."""
    if ctx.invoked_subcommand is not None:
        if tenant_ref:
            raise click.UsageError("give --tenant after the kind: trailseal train "
                                   f"{ctx.invoked_subcommand} --tenant {tenant_ref}")
        return
    group: click.Group = ctx.command  # type: ignore[assignment]
    if not tenant_ref:
        kinds = ", ".join(sorted(group.commands)) or "none installed"
        raise click.UsageError(f"give --tenant (every kind) or a kind of model ({kinds})")
    if not group.commands:
        raise click.ClickException("no installed plugin trains models")
    failed = []
    for name in sorted(group.commands):
        click.echo(f"[{name}]")
        try:
            ctx.invoke(group.commands[name], tenant_ref=tenant_ref)
        except click.ClickException as exc:
            if exc.format_message().startswith("no tenant"):
                raise
            click.echo(f"  not trained: {exc.format_message()}", err=True)
            failed.append(name)
    if failed:
        raise click.ClickException(f"not trained: {', '.join(failed)} (the previous models "
                                   "stay active)")
