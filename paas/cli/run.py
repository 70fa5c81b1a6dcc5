"""One-off and exec processes of an app: `run APP [--env K=V]... CMD...` and `enter APP [TYPE.N] [CMD...]`.

Both are interactive: stdin passes to the process, and when stdin and stdout are a terminal (locally, or over
`ssh -t`) it runs on a terminal of its own (raw, resized along, Ctrl-C reaches it); --no-tty keeps pipes. The
logic is in paas.services.oneoff.
"""

from __future__ import annotations

import os
import sys

import click

from . import audit, cli, context, progress
from .apps import APP_ARGUMENT
from .containers import _echo_line
from .permissions import needs

PASS_THROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def _leading_options(words: tuple[str, ...], env: list[str] | None) -> tuple[list[str], bool]:
    """--no-tty and (into env, unless None) --env K=V / -e K=V / --env=K=V written after APP (Dokku's order),
    taken off the command's front: (the command, whether --no-tty was among them). `--` ends them."""
    rest, no_tty = list(words), False
    while rest:
        word = rest[0]
        if word == "--":
            rest.pop(0)
            break
        if word == "--no-tty":
            no_tty = True
            rest.pop(0)
        elif env is not None and word in ("-e", "--env") and len(rest) > 1:
            env.append(rest[1])
            del rest[:2]
        elif env is not None and word.startswith("--env="):
            env.append(word.removeprefix("--env="))
            rest.pop(0)
        else:
            break
    return rest, no_tty


def _wants_tty(no_tty: bool) -> bool:
    """A terminal when the caller is at one: stdin and stdout both (`run APP pg_dump > file` gets pipes)."""
    return not no_tty and os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())


def _with_term(env: list[str], tty: bool) -> list[str]:
    if tty and os.environ.get("TERM") and not any(e.partition("=")[0] == "TERM" for e in env):
        env.append(f"TERM={os.environ['TERM']}")  # the terminal type is the client's
    return env


@cli.command("run", context_settings=PASS_THROUGH)
@needs("deploy")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Extra environment (repeatable).")
@click.option("--no-tty", is_flag=True, help="Pipes even when stdin is a terminal.")
@APP_ARGUMENT
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="CMD...")
def run_cmd(app, env, no_tty, command):
    """Run CMD once in a new container of APP's active release (its image, config, network, limits, storage);
    streams its output, exits with its code and removes the container. One word with spaces runs through
    /bin/sh -c. Interactive on a terminal (`ssh -t paas@HOST run APP python manage.py shell`)."""
    from ..runtime import console
    from ..services import oneoff

    env = list(env)
    words, late_no_tty = _leading_options(command, env)
    tty = _wants_tty(no_tty or late_no_tty)
    env = _with_term(env, tty)
    ctx = context()
    planned = oneoff.plan(ctx, app, words, env, tty=tty)  # bad input fails here, before anything is recorded
    cluster = oneoff.runs_elsewhere(ctx, app)
    if cluster:
        progress(f"{app} runs on the {cluster} cluster; this one-off runs on this host, in the same image with the "
                 "same config")
    audit("run", app, command=" ".join(words), env=sorted(e.partition("=")[0] for e in env))
    with console.interrupt_on_hangup():
        code = oneoff.run(ctx, planned, on_line=_echo_line)
    if code:
        raise click.exceptions.Exit(code)


@cli.command("enter", context_settings=PASS_THROUGH)
@needs("deploy")
@click.option("--no-tty", is_flag=True, help="Pipes even when stdin is a terminal.")
@APP_ARGUMENT
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[TYPE.N] [CMD...]")
def enter_cmd(app, no_tty, command):
    """Run CMD (default /bin/sh) inside APP's running process TYPE.N (default web.1) and exit with its code;
    interactive on a terminal like `run`."""
    from ..runtime import console
    from ..services import oneoff

    words, late_no_tty = _leading_options(command, None)
    target = oneoff.DEFAULT_TARGET
    if words and oneoff.is_target(words[0]):
        target = words.pop(0)
    tty = _wants_tty(no_tty or late_no_tty)
    ctx = context()
    oneoff.process_container(ctx, app, target)  # unknown process: one line before anything is recorded
    audit("enter", app, process=target, command=" ".join(words) or oneoff.DEFAULT_SHELL[0])
    with console.interrupt_on_hangup():
        code = oneoff.enter(ctx, app, target, words, tty=tty, env=_with_term([], tty))
    if code:
        raise click.exceptions.Exit(code)
