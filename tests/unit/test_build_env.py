"""paas.build.buildenv: which value of a name RUN sees and later instructions expand (BuildKit's state env)."""

from __future__ import annotations

from paas.build import buildenv, imageconfig
from paas.build import instructions as I
from paas.build.executor import StageState

BASE = {"Env": ["PATH=/usr/bin:/bin", "X=from-image"]}


def walk(text: str, build_args: dict | None = None, global_args: dict | None = None,
         config: dict | None = None) -> tuple[list[I.Instruction], dict[str, str], StageState]:
    """Expand and apply a stage's instructions the way the executor does: each one against the build
    environment of the moment. Returns the expanded instructions, the final environment and the stage."""
    st = StageState("s", dict(config if config is not None else BASE))
    env = buildenv.from_config(st.config)
    expanded = []
    for instruction in I.parse_dockerfile("FROM scratch\n" + text)[0].instructions:
        if not isinstance(instruction, (I.Run, I.Cmd, I.Entrypoint, I.Shell, I.Healthcheck, I.Onbuild)):
            instruction = I.expand(instruction, env)
        if not isinstance(instruction, (I.Arg, I.Run, I.Copy, I.Add, I.Workdir)):
            imageconfig.apply(st, instruction, instruction.original)
        env = buildenv.after(env, instruction, build_args or {}, global_args or {})
        expanded.append(instruction)
    return expanded, env, st


def test_env_after_arg_wins_even_over_a_build_arg():
    text = "ARG X=a\nENV X=b\nRUN echo $X\nUSER $X\nLABEL l=$X\nWORKDIR /w/$X\nEXPOSE ${X:+80}\nENV Y=$X\n"
    for build_args in ({}, {"X": "c"}):
        steps, env, st = walk(text, build_args)
        assert env["X"] == "b" and env["Y"] == "b"
        user, label, workdir = steps[3], steps[4], steps[5]
        assert (user.user, label.pairs, workdir.path) == ("b", (("l", "b"),), "/w/b")
        assert imageconfig.env_dict(st.config)["X"] == "b"
        assert buildenv.run_env(env)[1] == "X=b"  # RUN's environment, in the base image's order


def test_arg_after_env_wins_in_the_build_but_not_in_the_image():
    """BuildKit: dispatchArg AddEnv's the value after dispatchEnv did, and the later one is kept."""
    _, env, st = walk("ENV X=b\nARG X\nCOPY $X /dst/\n", {"X": "c"})
    assert env["X"] == "c" and imageconfig.env_dict(st.config)["X"] == "b"
    steps, env, _ = walk("ENV X=b\nARG X\nCOPY $X /dst/\n")  # no value for the ARG: ENV stays
    assert env["X"] == "b" and steps[2].sources == ("b",)
    _, env, _ = walk("ENV X=b\nARG X=a\n")
    assert env["X"] == "a"


def test_arg_values_build_arg_then_default_then_global():
    arg = I.parse_dockerfile("FROM scratch\nARG A B=dflt C D\n")[0].instructions[0]
    values = buildenv.arg_values(arg, {"A": "given", "B": "over"}, {"C": "global", "A": "ignored"})
    assert values == [("A", "given"), ("B", "over"), ("C", "global")]  # D: declared without any value
    assert buildenv.arg_values(arg, {}, {}) == [("B", "dflt")]
    assert buildenv.arg_values(arg, {"A": ""}, {}) == [("A", ""), ("B", "dflt")]  # empty is a value


def test_arg_default_expands_against_env_of_the_moment():
    _, env, _ = walk("ENV V=1\nARG W=${V}-x\nENV V=2\nARG Z=$V\n")
    assert (env["W"], env["Z"], env["V"]) == ("1-x", "2", "2")


def test_image_env_starts_the_environment_and_a_later_arg_overrides_it():
    _, env, st = walk("ARG X=mine\n")
    assert env["X"] == "mine" and env["PATH"] == "/usr/bin:/bin"
    assert imageconfig.env_dict(st.config)["X"] == "from-image"  # an ARG never reaches the image config


def test_a_stage_from_a_stage_inherits_its_args_with_its_env_on_top():
    parent_env = {"PATH": "/bin", "X": "arg-value", "ONLY_ARG": "1"}
    parent_config = {"Env": ["PATH=/bin", "X=env-value"]}
    assert buildenv.inherit(parent_env, parent_config) == {"PATH": "/bin", "X": "env-value", "ONLY_ARG": "1"}


def test_from_config_and_with_pairs_keep_first_definition_order():
    env = buildenv.from_config({"Env": ["A=1", "B=2", "A=3", "EMPTY=", "NOVALUE"]})
    assert env == {"A": "3", "B": "2", "EMPTY": "", "NOVALUE": ""}
    assert list(buildenv.with_pairs(env, (("B", "x"), ("C", "y")))) == ["A", "B", "EMPTY", "NOVALUE", "C"]
    assert buildenv.after(env, I.parse_dockerfile("FROM scratch\nUSER x\n")[0].instructions[0], {}, {}) == env
