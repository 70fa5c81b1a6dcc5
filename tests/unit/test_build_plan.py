"""The builder's pure parts: which stages run, what metadata instructions do, RUN argv, cache fingerprints."""

from __future__ import annotations

import pytest

from paas.build import imageconfig
from paas.build import instructions as I
from paas.build.executor import (
    StageState,
    _run_argv,
    expand_from,
    fingerprint,
    global_scope,
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
