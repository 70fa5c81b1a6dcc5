"""paasd: the long-running service. On start it reconciles (containers, interrupted deploys, routes), makes sure
nginx runs with our config, then serves SSH (git push, CLI commands) until SIGTERM/SIGINT.

Containers (under their own supervisors) and nginx outlive paasd on purpose: restarting paasd never interrupts
the apps. One paasd per data root (a lock file); `--check` verifies and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click

from .context import open_context
from .errors import PaasError, UserError

log = logging.getLogger("paas.daemon")


def _single_instance(ctx) -> int:
    """Hold <root>/locks/paasd.lock for the life of the process (released by the kernel when it dies)."""
    from . import locks

    def busy(other: str) -> UserError:
        return UserError(f"paasd already runs for {ctx.paths.root}" + (f" (pid {other})" if other else ""),
                         "stop it first, or set PAAS_ROOT for another data root")

    return locks.hold_for_process(ctx.paths.locks / "paasd.lock", busy=busy)


def reconcile_containers(ctx) -> None:
    from .runtime.containers import reconcile

    result = reconcile(ctx)
    click.echo(f"paasd: reconciled {result['containers']} containers "
               f"({len(result['removed_incomplete'])} incomplete removed, "
               f"{len(result['reclaimed_network'])} network leases reclaimed)")


def runtime_line(ctx) -> str:
    """The container runtime this host uses and, once per start or check, why when it is not the obvious one
    (hybrid cgroups, a fallback): `container:run` no longer repeats it on every container."""
    from .runtime.host import describe_runtime

    return f"paasd: runtime {describe_runtime(ctx)}"


def repair_network(ctx) -> None:
    """Before the apps: this root's bridge, rules and running containers' attachments as they were (a bridge
    deleted by hand or a reboot that left containers running elsewhere)."""
    from .repair import repair_network_round

    for line in repair_network_round(ctx):
        click.echo(f"paasd: repaired network: {line}")


def reconcile_apps(ctx) -> None:
    from .deploy import reconcile_apps

    apps = reconcile_apps(ctx)
    if apps["interrupted_deploys"]:
        click.echo(f"paasd: undid interrupted deploys: {', '.join(apps['interrupted_deploys'])}")
    if apps["replaced_processes"]:
        click.echo(f"paasd: replaced dead processes: {', '.join(apps['replaced_processes'])}")
    click.echo(f"paasd: nginx routes {len(apps['routes'])} app(s)"
               + (f": {', '.join(apps['routes'])}" if apps["routes"] else ""))


@click.command()
@click.option("--check", is_flag=True, help="Verify the data root and state, then exit.")
def paasd(check: bool) -> None:
    """Run the paas daemon in the foreground: SSH server for git push and CLI commands, nginx, recovery, metrics."""
    ctx = open_context()
    images = len(ctx.store.tags())
    click.echo(f"paasd: data root {ctx.paths.root}, {images} images in the store")
    click.echo(runtime_line(ctx))
    if check:  # containers only: --check must not start nginx or touch apps
        if ctx.host_facts.is_root:
            reconcile_containers(ctx)
        return
    if not ctx.host_facts.is_root:
        raise UserError("paasd needs root (containers, networks, nginx on port 80)", "run it as root")
    lock_fd = _single_instance(ctx)
    try:
        reconcile_containers(ctx)
        repair_network(ctx)
        reconcile_apps(ctx)
        _serve(ctx)
    finally:
        os.close(lock_fd)


def _serve(ctx) -> None:
    from .context import Context
    from .sshd import SSHServer

    stop = threading.Event()

    def on_signal(signum, frame):
        click.echo(f"paasd: {signal.Signals(signum).name}: stopping (apps and nginx keep running)")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    listen = str(ctx.config.get("ssh.listen", "0.0.0.0"))
    port = int(ctx.config.get("ssh.port", 2222))
    # no banner: OpenSSH prints it on every connection, i.e. in every push; a refused key gets the standard
    # "Permission denied (publickey)" and `paas ssh-keys:add` is in the docs
    server = SSHServer(lambda: Context(ctx.paths), listen, port, banner=None,
                       max_connections=int(ctx.config.get("ssh.max_connections", 100)),
                       login_grace_s=float(ctx.config.get("ssh.login_grace_s", 120)))
    server.start()
    click.echo(f"paasd: SSH on {listen}:{server.port} (git push ssh://paas@HOST:{server.port}/APP)", nl=True)
    api = None
    if int(ctx.config.get("api.port", 2280)):
        from .web.server import ApiServer

        api = ApiServer(lambda: Context(ctx.paths), str(ctx.config.get("api.listen", "127.0.0.1")),
                        int(ctx.config.get("api.port", 2280)))
        api.start()
        click.echo(f"paasd: HTTP API on http://{api.listen}:{api.port}/api/v1 (tokens: paas tokens:create)")
    sampler = None
    interval = float(ctx.config.get("metrics.interval_s", 10))
    if interval > 0:
        from .metrics.sampler import SamplerThread

        sampler = SamplerThread(lambda: Context(ctx.paths), interval)
        sampler.start()
        click.echo(f"paasd: metrics sampled every {interval:g}s (CPU, memory, requests; kept 24 h)")
    repairer = None
    repair_interval = float(ctx.config.get("repair.interval_s", 2))
    if repair_interval > 0:
        from .periodic import Periodic
        from .repair import Repairer

        repairer = Periodic("repair", "repair", logging.getLogger("paas.repair"), lambda: Context(ctx.paths),
                            repair_interval, Repairer)
        repairer.start()
        click.echo(f"paasd: repairs checked every {repair_interval:g}s (bridge, rules, nginx, routes, dead "
                   "supervisors)")
    cluster_watch = None
    if ctx.config.get("swarm.manager"):
        from .scheduler.swarm.watch import ClusterWatch

        cluster_watch = ClusterWatch(lambda: Context(ctx.paths))
        cluster_watch.start()
        click.echo(f"paasd: following the Swarm cluster at {ctx.config.get('swarm.manager')} (swarm apps' routes "
                   "track their tasks)")
    from .proxy.autocert import renewal_thread

    renewals = renewal_thread(lambda: Context(ctx.paths), float(ctx.config.get("certs.check_interval_s", 3600)))
    if float(ctx.config.get("certs.check_interval_s", 3600)) > 0:
        renewals.start()
        click.echo("paasd: certificates checked every "
                   f"{float(ctx.config.get('certs.check_interval_s', 3600)):g}s (certs:auto; renewed "
                   f"{ctx.config.get('certs.renew_days', 30)} days before expiry)")
    sys.stdout.flush()
    try:
        while not stop.wait(1):
            pass
    finally:
        renewals.stop()
        if cluster_watch is not None:
            cluster_watch.stop()
        if repairer is not None:
            repairer.stop()
        if sampler is not None:
            sampler.stop()
        if api is not None:
            api.stop()
        server.stop()
        click.echo("paasd: stopped")


def entry() -> None:
    logging.basicConfig(level=logging.DEBUG if os.environ.get("PAAS_DEBUG") == "1" else logging.INFO,
                        format="paasd: %(name)s: %(message)s", stream=sys.stderr)
    # paramiko logs every connection at INFO and a port probe (a client that closes before the SSH banner) as an
    # ERROR with tracebacks; paas.sshd logs each connection's outcome in one line instead
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    try:
        paasd.main(standalone_mode=False)
    except PaasError as exc:
        click.echo(f"paasd: error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
