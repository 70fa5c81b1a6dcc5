"""paas.build.instructions: typed instructions, flags, stages and the build-time expansion rules."""

from __future__ import annotations

import pytest

from paas.build.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    InlineFile,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    expand,
    parse_dockerfile,
    parse_duration,
    parse_instruction,
    parse_mount,
)
from paas.build.parser import parse
from paas.errors import DockerfileError


def one(line: str, file: str = "Dockerfile"):
    """The typed form of a one-instruction Dockerfile (heredoc bodies may follow)."""
    result = parse(line, file)
    return parse_instruction(result.nodes[0], file)


def refused(line: str, match: str) -> DockerfileError:
    with pytest.raises(DockerfileError, match=match) as info:
        one(line)
    return info.value


# -- one test per instruction kind -----------------------------------------------------------------------
def test_from():
    assert one("FROM alpine:3.19") == From("alpine:3.19", original="FROM alpine:3.19", line_start=1, line_end=1)
    stage = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build")
    assert (stage.image, stage.name, stage.platform) == ("golang:1.22", "build", "$BUILDPLATFORM")
    refused("FROM a b", "FROM requires either one or three arguments")
    refused("FROM a AS 1st", "invalid name for build stage")


def test_run_shell_and_exec_forms():
    shell = one("RUN apt-get update && \\\n  apt-get install -y curl")
    assert (shell.command, shell.json_form) == (("apt-get update &&   apt-get install -y curl",), False)
    assert (shell.network, shell.security, shell.mounts) == ("default", "sandbox", ())
    assert (shell.line_start, shell.line_end) == (1, 2)
    exec_form = one('RUN ["sh", "-c", "echo $HOME"]')
    assert (exec_form.command, exec_form.json_form) == (("sh", "-c", "echo $HOME"), True)


def test_run_heredoc_files():
    run = one("RUN <<-EOF bash\n\techo hi\nEOF\n")
    assert run.command == ("<<-EOF bash",)
    assert run.heredocs == (InlineFile("EOF", "echo hi\n", expand=True, chomp=True),)


def test_run_mounts():
    run = one("RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=bind,source=.,target=/src "
              "--mount=type=secret,id=npm,env=NPM_TOKEN --mount=type=tmpfs,target=/tmp,size=64m make")
    cache, bind, secret, tmpfs = run.mounts
    assert cache == Mount("cache", "/root/.cache", sharing="locked", readonly=False)
    assert bind == Mount("bind", "/src", source=".", readonly=True)
    assert (secret.type, secret.id, secret.env, secret.readonly) == ("secret", "npm", "NPM_TOKEN", True)
    assert (tmpfs.size, tmpfs.readonly) == (64 * 1024 * 1024, False)
    assert len(run.mount_specs) == 4


@pytest.mark.parametrize("spec, expected", [
    ("target=/x", Mount("bind", "/x", readonly=True)),
    ("type=bind,target=/x,rw", Mount("bind", "/x", readonly=False)),
    ("type=bind,target=/x,readonly=false", Mount("bind", "/x", readonly=False)),
    ("type=cache,dst=/x,ro", Mount("cache", "/x", readonly=True)),
    ("type=cache,target=/x,mode=0755,uid=1000,gid=1000", Mount("cache", "/x", readonly=False, mode=0o755, uid=1000,
                                                                gid=1000)),
    ('type=bind,"source=a,b",target=/x', Mount("bind", "/x", source="a,b")),
    ("Type=SSH,required", Mount("ssh", readonly=True, required=True)),
    ("type=bind,from=build,src=/out,destination=/x", Mount("bind", "/x", source="/out", from_="build")),
])
def test_mount_specs(spec, expected):
    assert parse_mount(spec) == expected


@pytest.mark.parametrize("spec, match", [
    ("type=nfs,target=/x", 'unsupported mount type "nfs"'),
    ("type=cache,target=/x,sharing=wide", "unsupported sharing value"),
    ("type=bind,target=/x,sharing=locked", "invalid cache sharing set for bind mount"),
    ("type=bind,target=/x,mode=0755", 'mode not allowed for "bind" type mounts'),
    ("type=cache,target=/x,mode=9", "invalid value 9 for mode"),
    ("type=bind,target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"),
    ("type=bind,target=/x,required", "unexpected key 'required'"),
    ("type=secret", "invalid secret mount"),
    ("type=secret,id=a,source=b", "both source and id can't be set"),
    ("type=secret,id=a,from=x", "secret mount should not have a from"),
    ("type=bind,target=/x,colour=blue", "unexpected key 'colour'"),
    ("type=bind,target", "invalid field 'target' must be a key=value pair"),
    ("type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"),
    ('type=bind,target=\\"/x', "failed to parse csv mounts: bare \""),
    ("type=bind,from=$STAGE,target=/x", "'from' doesn't support variable expansion"),
])
def test_bad_mounts_name_the_line(spec, match):
    err = refused(f"RUN --mount={spec} true", match)
    assert err.line_start == 1 and err.hint


def test_mount_with_variables_is_validated_when_expanded():
    run = one("RUN --mount=type=$KIND,target=$HOME/.cache make")
    assert run.mounts == (Mount(type="$KIND", target="$HOME/.cache"),)
    expanded = expand(run, {"KIND": "cache", "HOME": "/root"})
    assert expanded.mounts == (Mount("cache", "/root/.cache", readonly=False),)
    with pytest.raises(DockerfileError, match='unsupported mount type "nfs"'):
        expand(run, {"KIND": "nfs", "HOME": "/root"})


@pytest.mark.parametrize("line, match", [
    ("RUN --network=host curl x", "--network=host is not allowed"),
    ("RUN --network=bridge curl x", 'invalid network mode "bridge"'),
    ("RUN --security=insecure make", "--security=insecure is not allowed"),
    ("RUN --device=/dev/kvm make", "--device is not supported"),
])
def test_run_options_we_refuse(line, match):
    assert "Dockerfile:1:" in str(refused(line, match))


def test_run_network_none():
    assert one("RUN --network=none make").network == "none"


def test_cmd_and_entrypoint():
    assert one('CMD ["nginx", "-g", "daemon off;"]') == Cmd(("nginx", "-g", "daemon off;"), True, line_start=1,
                                                           line_end=1, original='CMD ["nginx", "-g", "daemon off;"]')
    assert one("CMD node server.js").command == ("node server.js",)
    reset = one("ENTRYPOINT []")
    assert isinstance(reset, Entrypoint) and (reset.command, reset.json_form) == ((), True)


def test_env_label_pairs():
    env = one('ENV A=1 B="two words" C=')
    assert isinstance(env, Env) and env.pairs == (("A", "1"), ("B", '"two words"'), ("C", ""))
    assert one("ENV LEGACY a value").pairs == (("LEGACY", "a value"),)
    label = one('LABEL org.opencontainers.image.title="My app" version=1')
    assert isinstance(label, Label) and label.pairs == (("org.opencontainers.image.title", '"My app"'),
                                                        ("version", "1"))
    refused("ENV =x", "ENV names can not be blank")
    refused("LABEL", "LABEL requires at least one argument")


def test_arg():
    arg = one('ARG VERSION=1.2 DEBUG NAME="a b"')
    assert isinstance(arg, Arg) and arg.args == (("VERSION", "1.2"), ("DEBUG", None), ("NAME", '"a b"'))
    refused("ARG =1", "ARG names can not be blank")


def test_expose_user_workdir_volume_stopsignal_shell_maintainer():
    assert one("EXPOSE 8080 80/tcp 443").ports == ("443", "80/tcp", "8080")  # sorted, as BuildKit
    assert isinstance(one("EXPOSE 80"), Expose)
    assert one("USER app:app") == User("app:app", line_start=1, line_end=1, original="USER app:app")
    assert isinstance(one("WORKDIR /srv/app"), Workdir) and one("WORKDIR /srv/app").path == "/srv/app"
    assert one('VOLUME ["/data", "/logs"]').paths == ("/data", "/logs")
    assert isinstance(one("VOLUME /data /logs"), Volume) and one("VOLUME /data /logs").paths == ("/data", "/logs")
    assert one("STOPSIGNAL SIGQUIT") == StopSignal("SIGQUIT", line_start=1, line_end=1, original="STOPSIGNAL SIGQUIT")
    assert one('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]') == Shell(("/bin/bash", "-eo", "pipefail", "-c"),
                                                                        line_start=1, line_end=1,
                                                                        original='SHELL ["/bin/bash", "-eo", '
                                                                                 '"pipefail", "-c"]')
    assert isinstance(one("MAINTAINER Jane <j@example.com>"), Maintainer)
    assert one("MAINTAINER Jane <j@example.com>").maintainer == "Jane <j@example.com>"
    refused("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form")
    refused('VOLUME [""]', "VOLUME specified can not be an empty string")


@pytest.mark.parametrize("keyword", ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"])
def test_exactly_one_argument(keyword):
    refused(keyword, f"{keyword} requires exactly one argument")


@pytest.mark.parametrize("keyword", ["ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME", "ARG"])
def test_at_least_one_argument(keyword):
    refused(keyword, f"{keyword} requires at least one argument")


def test_healthcheck():
    check = one("HEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=500ms --retries=3 "
                "CMD curl -f http://localhost/ || exit 1")
    assert isinstance(check, Healthcheck)
    assert check.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert (check.interval, check.timeout, check.start_period, check.start_interval, check.retries) == (
        30 * 10**9, 90 * 10**9, 5 * 10**9, 5 * 10**8, 3)
    assert one('HEALTHCHECK CMD ["/bin/check", "--quiet"]').test == ("CMD", "/bin/check", "--quiet")
    assert one("HEALTHCHECK --timeout=0s CMD true").timeout == 0
    assert one("HEALTHCHECK NONE").test == ("NONE",)


@pytest.mark.parametrize("line, match", [
    ("HEALTHCHECK NONE now", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK --interval=5s NONE", "HEALTHCHECK NONE takes no flags"),
    ("HEALTHCHECK CONNECT TCP 7000", 'Unknown type "CONNECT" in HEALTHCHECK'),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK --interval=5 CMD true", 'invalid duration "5"'),
    ("HEALTHCHECK --interval=50ns CMD true", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative"),
    ("HEALTHCHECK --retries=x CMD true", "invalid syntax"),
])
def test_healthcheck_errors(line, match):
    refused(line, match)


@pytest.mark.parametrize("text, nanos", [
    ("0", 0), ("1ns", 1), ("1.5h", 5400 * 10**9), ("1m30s", 90 * 10**9), (".5s", 5 * 10**8), ("5.s", 5 * 10**9),
    ("2µs", 2000), ("-3ms", -3 * 10**6), ("1h2m3s4ms", 3723004 * 10**6),
])
def test_parse_duration(text, nanos):
    assert parse_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "5", "s", ".s", "1d", "1h-2m", "+"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_onbuild():
    trigger = one("ONBUILD RUN make \\\n  install")
    assert isinstance(trigger, Onbuild) and trigger.expression == "RUN make   install"
    with_heredoc = one("onbuild COPY <<EOF /x\nhello\nEOF\n")
    assert with_heredoc.expression == "COPY <<EOF /x\nhello\nEOF"
    refused("ONBUILD ONBUILD RUN touch foobar", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    refused("ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger")


def test_copy():
    copy = one("COPY --from=build --chown=app:app --chmod=0644 --link --exclude=*.md --exclude=.git a b /dst/")
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest, copy.from_, copy.chown, copy.chmod) == (("a", "b"), "/dst/", "build",
                                                                             "app:app", "0644")
    assert (copy.link, copy.parents, copy.excludes) == (True, False, ("*.md", ".git"))
    assert one('COPY ["my file", "/dst dir/"]').sources == ("my file",)
    assert one("COPY --parents a/b /x").parents is True


def test_copy_heredoc_sources():
    copy = one("COPY <<EOF a <<-'RAW' /etc/app/\nx=$X\nEOF\n\ty=$Y\nRAW\n")
    assert copy.sources == ("a",)
    assert copy.heredocs == (InlineFile("EOF", "x=$X\n", expand=True), InlineFile("RAW", "y=$Y\n", expand=False,
                                                                                 chomp=True))
    refused("COPY a <<EOF\nx\nEOF\n", "COPY cannot accept a heredoc as a destination")


def test_add():
    add = one("ADD --keep-git-dir --checksum=sha256:abc --unpack=false --chown=1:2 https://example.com/a.tgz /x")
    assert isinstance(add, Add)
    assert (add.sources, add.dest, add.keep_git_dir, add.checksum, add.unpack, add.chown) == (
        ("https://example.com/a.tgz",), "/x", True, "sha256:abc", False, "1:2")
    plain = one("ADD a /x")
    assert (plain.keep_git_dir, plain.unpack, plain.checksum, plain.link) == (None, None, None, False)
    refused("ADD arg1", "ADD requires at least two arguments, but only one was provided")
    refused("COPY\t\n\t\tquux \\\n      bar", "COPY requires at least two arguments")


def test_copy_from_refuses_variables():
    refused("COPY --from=$STAGE a /b", "variable expansion is not supported for --from")


# -- flags -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, match", [
    ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
    ("COPY --user=me a b", "unknown flag: --user"),
    ("COPY --link=maybe a b", "expecting boolean value for flag --link, not: maybe"),
    ("COPY --link= a b", "missing a value on flag: --link"),
    ("COPY --from a b", "missing a value on flag: --from"),
    ("COPY --chown=a --chown=b a b", "duplicate flag specified: --chown"),
    ("STOPSIGNAL --now SIGTERM", "unknown flag: --now"),
    ("ENV --x A=1", "unknown flag: --x"),
])
def test_bad_flags(line, match):
    err = refused(line, match)
    assert err.line_start == 1 and err.hint


def test_flag_error_names_file_and_line():
    text = "FROM a\nRUN true\nCOPY --bogus x /y\n"
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text, file="web/Dockerfile")
    assert str(info.value).startswith("web/Dockerfile:3: unknown flag: --bogus")
    assert "--chown" in (info.value.hint or "")


def test_bool_flag_spellings():
    assert one("COPY --link=TRUE a b").link is True
    assert one("COPY --link=false a b").link is False
    assert one("COPY --link a b").link is True


def test_double_dash_ends_flags():
    assert one("COPY --link -- --odd-name /dst").sources == ("--odd-name",)


@pytest.mark.parametrize("line, match", [("FOO bar", "unknown instruction: FOO"),
                                         ("foo bar", "unknown instruction: foo")])
def test_unknown_instruction(line, match):
    err = refused(line, match)
    assert "RUN" in (err.hint or "")


# -- stages ------------------------------------------------------------------------------------------------
DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG GO=1.22
ARG BASE
FROM golang:${GO} AS build
ARG GO
WORKDIR /src
RUN go build -o /out/app .

FROM ${BASE:-alpine}
COPY --from=build /out/app /app
CMD ["/app"]
"""


def test_stages_and_global_args():
    dockerfile = parse_dockerfile(DOCKERFILE)
    assert isinstance(dockerfile, Dockerfile)
    assert [a.args for a in dockerfile.global_args] == [(("GO", "1.22"),), (("BASE", None),)]
    assert dockerfile.directives == {"syntax": "docker/dockerfile:1"}
    build, final = dockerfile
    assert (build.index, build.name, build.image) == (0, "build", "golang:${GO}")
    assert [type(i) for i in build.instructions] == [Arg, Workdir, Run]
    assert (final.index, final.name, final.image) == (1, None, "${BASE:-alpine}")
    assert [type(i) for i in final.instructions] == [Copy, Cmd]
    assert len(dockerfile) == 2 and dockerfile[1] is final
    assert dockerfile.stage("BUILD") is build and dockerfile.stage("0") is build and dockerfile.stage(1) is final
    assert dockerfile.stage("missing") is None and dockerfile.stage(5) is None


def test_escape_directive_reaches_the_dockerfile():
    assert parse_dockerfile("# escape=`\nFROM a\n").escape == "`"


@pytest.mark.parametrize("text, match, line", [
    ("RUN true\nFROM a\n", "no build stage in current context", 1),
    ("ARG A\n", "dockerfile contains no stages to build", None),
    ("FROM a AS x\nFROM b AS X\n", 'duplicate stage name "x"', 2),
])
def test_stage_errors(text, match, line):
    with pytest.raises(DockerfileError, match=match) as info:
        parse_dockerfile(text)
    assert info.value.line_start == line


# -- expansion -----------------------------------------------------------------------------------------------
def test_from_expands_with_global_args():
    dockerfile = parse_dockerfile(DOCKERFILE)
    assert expand(dockerfile[0].from_, {"GO": "1.22"}).image == "golang:1.22"
    assert expand(dockerfile[1].from_, {}).image == "alpine"
    with pytest.raises(DockerfileError, match="base name") as info:
        expand(one("FROM $NOTHING"), {})
    assert info.value.line_start == 1


def test_expanded_instructions():
    env = {"A": "1", "HOME": "/root", "PORTS": "80 443", "U": "app", "SIG": "SIGINT", "V": "2"}
    assert expand(one('ENV X=$A Y="${HOME}/x y"'), env).pairs == (("X", "1"), ("Y", "/root/x y"))
    assert expand(one("ENV LEGACY $A b"), {"A": "1"}).pairs == (("LEGACY", "1 b"),)
    assert expand(one('LABEL "k $A"=$V'), env).pairs == (("k 1", "2"),)
    assert expand(one("ARG $A=$V B"), env).args == (("$A", "2"), ("B", None))
    assert expand(one("WORKDIR $HOME/app"), env).path == "/root/app"
    assert expand(one("USER $U"), env).user == "app"
    assert expand(one("VOLUME $HOME/data"), env).paths == ("/root/data",)
    assert expand(one("STOPSIGNAL $SIG"), env).signal == "SIGINT"
    assert expand(one("EXPOSE $PORTS 8080"), env).ports == ("80", "443", "8080")
    copied = expand(one("COPY --chown=$U --chmod=$V $A ${HOME}/ /dst/$U/"), env)
    assert (copied.sources, copied.dest, copied.chown, copied.chmod) == (("1", "/root/"), "/dst/app/", "app", "2")
    added = expand(one("ADD --checksum=$V http://x/$A /y"), env)
    assert (added.sources, added.checksum) == (("http://x/1",), "2")


@pytest.mark.parametrize("line", [
    "RUN echo $HOME", 'CMD ["echo", "$HOME"]', "ENTRYPOINT echo $HOME", 'SHELL ["$SH"]',
    "HEALTHCHECK CMD echo $HOME", "ONBUILD RUN echo $HOME", "MAINTAINER $ME",
])
def test_instructions_the_builder_does_not_expand(line):
    instruction = one(line)
    assert expand(instruction, {"HOME": "/root", "SH": "sh", "ME": "x"}) == instruction


def test_heredoc_bodies_expand_only_without_quoted_delimiter():
    copy = one("COPY <<EOF <<'RAW' /dst/\n\"$A\" 'b' \\$A\nEOF\n$A\nRAW\n")
    bodies = expand(copy, {"A": "1"}).heredocs
    assert [b.data for b in bodies] == ["\"1\" 'b' $A\n", "$A\n"]
    run = one("RUN <<EOF\necho $A\nEOF\n")
    assert expand(run, {"A": "1"}).heredocs[0].data == "echo $A\n"


def test_expansion_uses_the_escape_token():
    assert expand(one("WORKDIR C:\\$A"), {"A": "x"}, escape="`").path == "C:\\x"
    assert expand(one("WORKDIR C:\\$A"), {"A": "x"}).path == "C:$A"


def test_expansion_errors_name_the_instruction_line():
    text = "FROM a\nENV A=1\nWORKDIR ${DIR:?set DIR}\n"
    workdir = parse_dockerfile(text, file="svc/Dockerfile")[0].instructions[1]
    with pytest.raises(DockerfileError) as info:
        expand(workdir, {})
    assert str(info.value).startswith("svc/Dockerfile:3: ") and "DIR: set DIR" in str(info.value)


def test_instructions_are_frozen():
    instruction = one("USER app")
    with pytest.raises(AttributeError):
        instruction.user = "root"
    assert instruction.error("nope").line_start == 1
