"""paas init: create the data root and a default config file."""

from __future__ import annotations

import click

from . import cli, emit_json, json_option
from .permissions import needs


@cli.command("init")
@needs("admin")
@json_option
def init_cmd(as_json: bool) -> None:
    """Create the data root (PAAS_ROOT, default /var/lib/paas), its state DB and config file."""
    from .. import state
    from ..config import init_root, paths_from_env
    from ..context import Context
    from ..runtime.host import describe_runtime
    from ..runtime.supervisor import ensure_shim

    paths = paths_from_env()
    created = init_root(paths)
    conn = state.connect(paths.state_db)
    version = state.schema_version(conn)
    conn.close()
    runtime = describe_runtime(Context(paths))  # its notice (hybrid cgroups, ...) is told here, once
    shim = ensure_shim(paths.root / "bin")  # compiled now (unless installed), not on the first container start
    if as_json:
        emit_json({"root": str(paths.root), "config": str(paths.config_file), "schema_version": version,
                   "created": [str(p) for p in created], "runtime": runtime,
                   "supervisor": str(shim)})
        return
    click.echo(f"data root: {paths.root}")
    click.echo(f"config:    {paths.config_file}")
    click.echo(f"state:     {paths.state_db} (schema {version})")
    click.echo(f"runtime:   {runtime}")
    click.echo(f"supervisor: {shim}")
