"""The builder's pure parts: which stages run, what metadata instructions do, RUN argv, cache fingerprints."""

from __future__ import annotations

import pytest

from paas.build import imageconfig
from paas.build import instructions as I
from paas.build.copyflags import copy_refusal, linked
from paas.build.executor import (
    StageState,
    _run_argv,
    expand_from,
    fingerprint,
    global_scope,
    heredoc_program,
    needed_stages,
)
from paas.errors import UserError


def plan(text: str, target: str | None = None, args: dict | None = None) -> list[int]:
    dockerfile = I.parse_dockerfile(text)
    froms = expand_from(dockerfile, global_scope(dockerfile, args or {}))
    return needed_stages(dockerfile, froms, target)


MULTI = """
ARG BASE=bb:1
FROM $BASE AS deps
RUN echo deps
FROM bb:1 AS tools
RUN echo tools
FROM deps AS build
COPY --from=tools /x /x
FROM bb:1 AS unrelated
FROM scratch
COPY --from=build /x /x
"""


def test_only_the_stages_the_target_needs():
    assert plan(MULTI) == [0, 1, 2, 4]
    assert plan(MULTI, target="build") == [0, 1, 2]
    assert plan(MULTI, target="tools") == [1]
    assert plan(MULTI, target="3") == [3]
    with pytest.raises(UserError, match="target stage 'nope' not found"):
        plan(MULTI, target="nope")


def test_global_args_feed_from_lines():
    dockerfile = I.parse_dockerfile("ARG TAG=1\nFROM bb:$TAG\n")
    assert expand_from(dockerfile, global_scope(dockerfile, {}))[0].image == "bb:1"
    assert expand_from(dockerfile, global_scope(dockerfile, {"TAG": "2"}))[0].image == "bb:2"


def apply_all(text: str, config: dict | None = None) -> StageState:
    dockerfile = I.parse_dockerfile("FROM scratch\n" + text)
    st = StageState("s", dict(config or {}))
    for instruction in dockerfile[0].instructions:
        instruction = I.expand(instruction, imageconfig.env_dict(st.config))
        imageconfig.apply(st, instruction, instruction.original)
    return st


def test_metadata_instructions_set_the_config_like_docker():
    st = apply_all('ENV A=1 B="two words"\nENV A=3\nLABEL x=y\nEXPOSE 80 53/udp\nUSER app\n'
                   'STOPSIGNAL SIGINT\nVOLUME /data\nCMD python app.py\n'
                   'HEALTHCHECK --interval=5s --retries=2 CMD curl -f localhost\nONBUILD RUN echo hi\n')
    c = st.config
    assert c["Env"] == ["A=3", "B=two words"]
    assert c["Labels"] == {"x": "y"} and c["User"] == "app" and c["StopSignal"] == "SIGINT"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and c["Volumes"] == {"/data": {}}
    assert c["Cmd"] == ["/bin/sh", "-c", "python app.py"]
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 5_000_000_000, "Retries": 2}
    assert c["OnBuild"] == ["RUN echo hi"]
    assert all(h["empty_layer"] for h in st.history) and len(st.history) == 10


def test_entrypoint_resets_an_inherited_cmd_but_not_one_set_in_the_stage():
    inherited = apply_all('ENTRYPOINT ["/app"]\n', {"Cmd": ["sh"]})
    assert inherited.config["Entrypoint"] == ["/app"] and "Cmd" not in inherited.config
    own = apply_all('CMD ["--help"]\nENTRYPOINT ["/app"]\n', {"Cmd": ["sh"]})
    assert own.config["Cmd"] == ["--help"]
    shell = apply_all('SHELL ["/bin/bash", "-c"]\nENTRYPOINT exec server\n')
    assert shell.config["Entrypoint"] == ["/bin/bash", "-c", "exec server"]


def test_workdir_is_relative_to_the_last_one():
    assert imageconfig.workdir({}, "app") == "/app"
    assert imageconfig.workdir({"WorkingDir": "/srv"}, "app/../web") == "/srv/web"
    assert imageconfig.workdir({"WorkingDir": "/srv"}, "/abs") == "/abs"


def run_of(text: str) -> I.Run:
    return I.parse_dockerfile("FROM scratch\n" + text)[0].instructions[0]


def test_run_argv_for_shell_exec_and_heredoc_forms():
    sh = ("/bin/sh", "-c")
    assert _run_argv(run_of("RUN echo $HOME\n"), sh) == ("/bin/sh", "-c", "echo $HOME")
    assert _run_argv(run_of('RUN ["echo", "$HOME"]\n'), sh) == ("echo", "$HOME")
    assert _run_argv(run_of("RUN <<EOF\necho a\necho b\nEOF\n"), sh) == ("/bin/sh", "-c", "echo a\necho b\n")
    argv = _run_argv(run_of("RUN python3 <<EOF\nprint(1)\nEOF\n"), sh)
    assert argv == ("/bin/sh", "-c", "python3 <<EOF\nprint(1)\nEOF\n")


def test_fingerprint_ignores_where_the_line_is():
    a = I.parse_dockerfile("FROM scratch\nRUN make\n")[0].instructions[0]
    b = I.parse_dockerfile("FROM scratch\n\n\nRUN   make\n")[0].instructions[0]
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(run_of("RUN make install\n"))


def test_run_heredoc_with_a_shebang_runs_as_a_program_through_the_shell():
    """BuildKit dispatchRun: a lone heredoc starting with #! is written to /dev/pipes/NAME (0755) and the
    SHELL runs that path; any other lone heredoc is the shell's script; SHELL is prepended either way."""
    bash = ("/bin/bash", "-eo", "pipefail", "-c")
    program = run_of("RUN <<SCRIPT\n#!/bin/busybox sh\necho $0\nSCRIPT\n")
    assert heredoc_program(program).data == "#!/bin/busybox sh\necho $0\n"
    assert _run_argv(program, bash) == (*bash, "/dev/pipes/SCRIPT")
    plain = run_of("RUN <<-EOT\n\techo a\nEOT\n")
    assert heredoc_program(plain) is None and _run_argv(plain, bash) == (*bash, "echo a\n")
    fed = run_of("RUN cat <<EOF\n#!not a program here\nEOF\n")
    assert heredoc_program(fed) is None
    assert _run_argv(fed, bash) == (*bash, "cat <<EOF\n#!not a program here\nEOF\n")
    two = run_of("RUN <<A <<B\n#!/bin/sh\nA\nb\nB\n")
    assert heredoc_program(two) is None


def copy_of(text: str) -> I.Copy | I.Add:
    return I.expand(run_of(text), {})


@pytest.mark.parametrize("line, message", [
    ("COPY https://example.com/a.txt /a", "source can't be a URL for COPY"),
    ("COPY git@github.com:a/b.git /src", "source can't be a git ref for COPY"),
    ("ADD --checksum=sha256:" + "0" * 64 + " a b /d/", "checksum can't be specified for multiple sources"),
    ("ADD --checksum=sha256:" + "0" * 64 + " a.tgz /d/", "checksum requires HTTP(S) or Git sources"),
    ("ADD --keep-git-dir=true https://example.com/repo.git /src", "ADD --keep-git-dir: this builder does not add"),
    ("ADD --keep-git-dir=false a /src", "ADD --keep-git-dir: this builder does not add git repositories"),
    ("ADD https://example.com/repo.git#main /src", "ADD https://example.com/repo.git#main: this builder does not"),
    ("ADD ssh://git@example.com/repo /src", "this builder does not add git repositories"),
    ("COPY --parents x/a.txt /app/", "COPY --parents is not supported by this builder"),
    ("ADD --exclude=*.md . /app/", "ADD --exclude is not supported by this builder"),
    ("COPY --link --chown=app a /a", "COPY --link --chown=app: --link copies into an empty tree"),
    ("COPY --link --chown=1000:app a /a", "--link copies into an empty tree"),
])
def test_copy_refusals_name_the_problem_and_the_line(line, message):
    refused = copy_refusal(copy_of(line + "\n"))
    assert refused is not None and message in refused.message and refused.line_start == 2


@pytest.mark.parametrize("line", [
    "COPY a b /d/", "ADD https://example.com/a.tgz /d/", "ADD --checksum=sha256:" + "0" * 64 + " https://x/a /a",
    "COPY --link --chown=1000:1000 a /a", "COPY --link --chown=root a /a", "COPY --link --chmod=0644 --chown=app a /a",
    "ADD https://example.com/repo.tar.gz /src/", "COPY github.com/x/y /src",
])
def test_copy_and_add_this_builder_runs(line):
    assert copy_refusal(copy_of(line + "\n")) is None


def test_link_means_an_empty_tree_unless_chmod_is_given():
    """BuildKit makes a MergeOp only when `cfg.link && cfg.chmod == ""`."""
    assert linked(copy_of("COPY --link a /a\n")) and linked(copy_of("ADD --link a /a\n"))
    assert not linked(copy_of("COPY --link --chmod=0644 a /a\n")) and not linked(copy_of("COPY a /a\n"))
    assert not linked(run_of("RUN true\n"))
