"""paas init: create the data root and a default config file, and claim the root's bridge and subnet."""

from __future__ import annotations

import os

import click

from . import cli, emit_json, json_option
from .permissions import needs


def _claim_network(paths, conn) -> tuple[str, str] | None:
    """The root's (bridge, subnet), claimed (paas.network.owner.root_network); None when not root."""
    from ..config import load_config
    from ..network import owner

    if os.geteuid() != 0:  # a claim is host-wide (/run/paas); containers need root anyway
        return None
    config = load_config(paths)
    bridge, subnet = owner.root_network(conn, config.get("network.bridge"), config.get("network.subnet"),
                                        config_hint=str(paths.config_file))
    return bridge, str(subnet)


@cli.command("init")
@needs("admin")
@json_option
def init_cmd(as_json: bool) -> None:
    """Create the data root (PAAS_ROOT, default /var/lib/paas), its state DB and config file, and claim a bridge
    and subnet no other data root on this host uses."""
    from .. import state
    from ..config import init_root, paths_from_env
    from ..context import Context
    from ..runtime.host import describe_runtime
    from ..runtime.supervisor import ensure_shim

    paths = paths_from_env()
    conns = []

    def picked() -> tuple[str, str] | None:  # a new config file names the pair it claims
        conns.append(state.connect(paths.state_db))
        return _claim_network(paths, conns[0])

    created = init_root(paths, network=picked)
    conn = conns[0] if conns else state.connect(paths.state_db)
    network = _claim_network(paths, conn)
    version = state.schema_version(conn)
    conn.close()
    runtime = describe_runtime(Context(paths))  # its notice (hybrid cgroups, ...) is told here, once
    shim = ensure_shim(paths.root / "bin")  # compiled now (unless installed), not on the first container start
    if as_json:
        emit_json({"root": str(paths.root), "config": str(paths.config_file), "schema_version": version,
                   "created": [str(p) for p in created], "runtime": runtime,
                   "supervisor": str(shim),
                   "network": {"bridge": network[0], "subnet": network[1]} if network else None})
        return
    click.echo(f"data root: {paths.root}")
    click.echo(f"config:    {paths.config_file}")
    click.echo(f"state:     {paths.state_db} (schema {version})")
    if network:
        click.echo(f"network:   bridge {network[0]}, subnet {network[1]}")
    click.echo(f"runtime:   {runtime}")
    click.echo(f"supervisor: {shim}")
