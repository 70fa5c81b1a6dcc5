"""paasd: the long-running service. For now it checks the data root and state and reports.

Later issues give it the SSH server, nginx supervision and reconciliation.
"""

from __future__ import annotations

import sys

import click

from .context import open_context
from .errors import PaasError


@click.command()
@click.option("--check", is_flag=True, help="Verify the data root and state, then exit.")
def paasd(check: bool) -> None:
    """Run the paas daemon."""
    from .runtime.containers import reconcile

    ctx = open_context()
    images = len(ctx.store.tags())
    click.echo(f"paasd: data root {ctx.paths.root}, {images} images in the store")
    if ctx.host_facts.is_root:
        result = reconcile(ctx)
        click.echo(f"paasd: reconciled {result['containers']} containers "
                   f"({len(result['removed_incomplete'])} incomplete removed, "
                   f"{len(result['reclaimed_network'])} network leases reclaimed)")
        click.echo(f"paasd: runtime {ctx.runtime.name}" + (f" ({ctx.runtime.notice})" if ctx.runtime.notice else ""))
    if not check:
        click.echo("paasd: no services to supervise yet (SSH, nginx and containers arrive in later releases)")


def entry() -> None:
    try:
        paasd.main(standalone_mode=False)
    except PaasError as exc:
        click.echo(f"paasd: error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
