"""Container commands: container:run|create|start|ps|logs|stop|kill|rm|exec|attach|inspect|commit."""

from __future__ import annotations

import os
import sys

import click

from ..errors import PaasError
from . import cli, context, emit_json, json_option, progress, table
from .permissions import needs


def run_options(fn):
    """The options shared by container:run and container:create."""
    options = [
        click.option("-e", "--env", multiple=True, help="Environment variable K=V (repeatable)."),
        click.option("-p", "--publish", multiple=True, help="Publish HOSTPORT:CONTAINERPORT[/udp]."),
        click.option("-v", "--volume", multiple=True, help="Bind mount /host:/container[:ro]."),
        click.option("--memory", help="Memory limit, e.g. 256m."),
        click.option("--cpus", type=float, help="CPU limit in cores, e.g. 0.5."),
        click.option("--pids-limit", type=int, help="Maximum number of processes (default 4096, 0: none)."),
        click.option("--name", help="Container name."),
        click.option("--restart", default="no", help="no, on-failure[:N], always or unless-stopped."),
        click.option("-u", "--user", help="User (name, uid, uid:gid)."),
        click.option("-w", "--workdir", help="Working directory."),
        click.option("--entrypoint", help="Replace the image's entrypoint (one word)."),
        click.option("--read-only", is_flag=True, help="Mount the root filesystem read-only."),
        click.option("--tmpfs", multiple=True, help="tmpfs mount /path[:size=64m,mode=1777]."),
        click.option("--cap-add", multiple=True, help="Add a capability (or ALL)."),
        click.option("--cap-drop", multiple=True, help="Drop a capability (or ALL)."),
        click.option("--init", is_flag=True, help="Run a PID 1 that reaps zombies (tini)."),
        click.option("--network", type=click.Choice(["bridge", "none"]), default="bridge"),
        click.option("--net-group", help="Reach the containers of this group on the bridge (an app's name: "
                                         "its containers); default: none of them."),
        click.option("--hostname", help="Container host name."),
        click.option("--stop-signal", help="Signal for stop (default: the image's, else SIGTERM)."),
        click.option("--stop-timeout", type=int, default=10, help="Seconds before SIGKILL on stop."),
        click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and pass it to the container."),
        click.option("-t", "--tty", is_flag=True, help="Run the process on a terminal (raw, resized along with "
                                                        "yours; Ctrl-C reaches it)."),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_options(kw: dict):
    from ..runtime import spec

    pids = kw["pids_limit"]
    env = tuple(kw["env"])
    if kw["tty"] and os.environ.get("TERM") and not any(e.partition("=")[0] == "TERM" for e in env):
        env += (f"TERM={os.environ['TERM']}",)  # the terminal type is the client's
    return spec.RunOptions(
        cmd=tuple(kw["command"]) if kw["command"] else None,
        entrypoint=(kw["entrypoint"],) if kw["entrypoint"] else None,
        env=env, user=kw["user"], workdir=kw["workdir"], hostname=kw["hostname"],
        memory=spec.parse_size(kw["memory"], "memory limit") if kw["memory"] else None,
        cpus=kw["cpus"], pids_limit=spec.DEFAULT_PIDS_LIMIT if pids is None else (pids or None),
        read_only=kw["read_only"], tmpfs=tuple(kw["tmpfs"]),
        volumes=tuple(spec.parse_volume(v) for v in kw["volume"]),
        cap_add=tuple(kw["cap_add"]), cap_drop=tuple(kw["cap_drop"]), init=kw["init"],
        stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"],
        restart=spec.parse_restart(kw["restart"]), ports=tuple(spec.parse_port(p) for p in kw["publish"]),
        network=kw["network"], group=kw["net_group"], tty=kw["tty"], interactive=kw["interactive"],
    )


def _echo_line(line) -> None:
    stream = sys.stderr if line.stream == "stderr" else sys.stdout
    stream.write(line.text + ("" if line.partial else "\n"))
    stream.flush()


@cli.command("container:run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@needs("admin")
@click.option("-d", "--detach", is_flag=True, help="Run in the background and print the container id.")
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@run_options
def container_run(detach: bool, remove: bool, **kw) -> None:
    """Run COMMAND in a new container from IMAGE; exits with the container's exit code. With -i -t it is
    interactive (a terminal; Ctrl-P Ctrl-Q detaches unless --rm)."""
    from ..runtime import console, containers

    if detach and remove:
        raise click.UsageError("--rm and --detach together are not supported yet; remove detached containers "
                               "with container:rm")
    with console.interrupt_on_hangup():
        info = containers.run(context(), kw["image"], build_options(kw), name=kw["name"], detach=detach,
                              remove_after=remove, on_line=_echo_line, progress=progress,
                              detach_keys=console.DETACH_KEYS)
    if detach:
        click.echo(info["id"])
        return
    if info["status"] in ("running", "restarting"):  # detached with Ctrl-P Ctrl-Q
        click.echo(f"\r\ndetached from {info['name']}: `paas container:attach {info['name']}` again", err=True)
        return
    code = info["exit_code"] if info["exit_code"] is not None else 125
    if code:
        raise click.exceptions.Exit(code)


@cli.command("container:create", context_settings={"ignore_unknown_options": True,
                                                    "allow_interspersed_args": False})
@needs("admin")
@run_options
def container_create(**kw) -> None:
    """Create a container from IMAGE without starting it; prints its id."""
    from ..runtime import containers

    info = containers.create(context(), kw["image"], build_options(kw), name=kw["name"], progress=progress)
    click.echo(info["id"])


@cli.command("container:start")
@needs("admin")
@click.argument("container")
def container_start(container: str) -> None:
    """Start a created or exited container in the background."""
    from ..runtime import containers

    info = containers.start(context(), container)
    click.echo(f"{info['name']}: {info['status']}")


@cli.command("container:ps")
@needs("admin")
@click.option("-a", "--all", "all_", is_flag=True, help="Also show stopped containers.")
@json_option
def container_ps(all_: bool, as_json: bool) -> None:
    """List containers (running ones unless -a)."""
    from ..runtime import containers

    rows = containers.list_containers(context(), all_=all_)
    if as_json:
        emit_json(rows)
        return
    table([(r["id"][:12], r["name"], r["image"], r["status"] + (f" ({r['exit_code']})"
                                                                  if r["exit_code"] is not None else ""),
            r["restart_count"], r["started_at"] or "") for r in rows],
          ["ID", "NAME", "IMAGE", "STATUS", "RESTARTS", "STARTED"])


@cli.command("container:logs")
@needs("admin")
@click.argument("container")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the container stops.")
@click.option("--since", help="Only output after this time (10m, 2h, or RFC 3339).")
@click.option("-n", "--tail", type=int, help="Only the last N lines.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each line with its time.")
@json_option
def container_logs(container: str, follow: bool, since: str | None, tail: int | None, timestamps: bool,
                   as_json: bool) -> None:
    """Print a container's output (stdout and stderr, in order)."""
    from ..runtime import containers

    for line in containers.read_logs(context(), container, follow=follow, since=since, tail=tail):
        if as_json:
            click.echo(__import__("json").dumps(line.as_dict()))
        elif timestamps:
            click.echo(f"{line.time} {line.text}", err=line.stream == "stderr")
        else:
            _echo_line(line)


@cli.command("container:stop")
@needs("admin")
@click.argument("names", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before SIGKILL.")
def container_stop(names: tuple[str, ...], timeout: int | None) -> None:
    """Stop containers: their stop signal, then SIGKILL after the timeout."""
    from ..runtime import containers

    ctx = context()
    for name in names:
        info = containers.stop(ctx, name, timeout)
        click.echo(f"{info['name']}: {info['status']}")


@cli.command("container:kill")
@needs("admin")
@click.argument("name")
@click.option("-s", "--signal", "sig", default="SIGKILL", help="Signal to send (default SIGKILL).")
def container_kill(name: str, sig: str) -> None:
    """Send a signal to a container's main process."""
    from ..runtime import containers

    info = containers.kill(context(), name, sig)
    click.echo(f"{info['name']}: sent {sig}")


@cli.command("container:rm")
@needs("admin")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Stop running containers first.")
def container_rm(names: tuple[str, ...], force: bool) -> None:
    """Remove containers with their mounts, upper dir, cgroups, network and IP lease."""
    from ..runtime import containers

    ctx = context()
    for name in names:
        info = containers.remove(ctx, name, force=force)
        click.echo(f"removed {info['name']}")


@cli.command("container:exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@needs("admin")
@click.option("-e", "--env", multiple=True, help="Extra environment K=V.")
@click.option("-u", "--user", help="User to run as.")
@click.option("-w", "--workdir", help="Working directory.")
@click.option("-i", "--interactive", is_flag=True, help="Pass stdin to the command.")
@click.option("-t", "--tty", is_flag=True, help="Run the command on a terminal.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def container_exec(env, user, workdir, interactive, tty, container, command) -> None:
    """Run COMMAND inside a running container; exits with its exit code."""
    from ..runtime import console, containers

    env = list(env)
    if tty and os.environ.get("TERM") and not any(e.partition("=")[0] == "TERM" for e in env):
        env.append(f"TERM={os.environ['TERM']}")
    with console.interrupt_on_hangup():
        code = containers.exec_(context(), container, list(command), env=env, user=user, workdir=workdir,
                                interactive=interactive, tty=tty)
    if code:
        raise click.exceptions.Exit(code)


@cli.command("container:attach")
@needs("admin")
@click.argument("container")
def container_attach(container: str) -> None:
    """Connect to a running container's terminal (-t) or stdin (-i) and output; Ctrl-P Ctrl-Q detaches."""
    from ..runtime import console, containers

    with console.interrupt_on_hangup():
        outcome = containers.attach(context(), container, on_line=_echo_line)
    if outcome == "detached":
        click.echo(f"\r\ndetached from {container}", err=True)
        return
    try:
        info = containers.wait_exit(context(), container, 10)
    except PaasError:  # restarted by its policy, or still stopping: nothing to report
        return
    if info["exit_code"]:
        raise click.exceptions.Exit(info["exit_code"])


@cli.command("container:inspect")
@needs("admin")
@click.argument("container")
@json_option
def container_inspect(container: str, as_json: bool) -> None:
    """Show a container's state, options and process."""
    from ..runtime import containers

    info = containers.inspect(context(), container)
    if as_json:
        emit_json(info)
        return
    for key in ("id", "name", "image", "status", "exit_code", "pid", "address", "runtime", "restart_policy",
                "restart_count", "started_at", "finished_at", "log_path"):
        click.echo(f"{key + ':':<16}{info[key] if info[key] is not None else ''}")
    click.echo(f"{'command:':<16}{' '.join(info['process'].get('args', []))}")


@cli.command("container:commit")
@needs("admin")
@click.argument("container")
@click.argument("image", required=False)
@click.option("-m", "--message", default="", help="A comment for the image history.")
@json_option
def container_commit(container: str, image: str | None, message: str, as_json: bool) -> None:
    """Save a container's changes as a new image layer (tagged IMAGE when given)."""
    from ..runtime import containers

    result = containers.commit(context(), container, image, message=message)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['name'] or '<untagged>'}: {result['digest']}")
