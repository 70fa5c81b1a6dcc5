"""The builder for real: Dockerfile + context -> layered image in the store, RUN in containers, the cache."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from paas.build.executor import BuildOptions, build
from paas.errors import BuildError, DockerfileError, UserError
from paas.runtime import containers, spec
from tests.netkit import serve, stop


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def do_build(ctx, context: Path, tag: str = "app:1", **options):
    lines: list[str] = []
    options.setdefault("network", "none")
    result = build(ctx, BuildOptions(context_dir=context, tags=(tag,), progress=lines.append, **options))
    return result, lines


def run_image(ctx, image: str, *cmd: str) -> str:
    out: list[str] = []
    opts = spec.RunOptions(cmd=cmd or None, network="none")
    info = containers.run(ctx, image, opts, remove_after=True, on_line=lambda line: out.append(line.text))
    assert info["exit_code"] == 0, out
    return "\n".join(out)


@pytest.fixture
def app(tmp_path):
    return write(tmp_path / "app", {
        "Dockerfile": """
            FROM bb:1
            ENV GREETING=hello APP_HOME=/srv/app
            WORKDIR $APP_HOME
            COPY requirements.txt ./
            RUN wc -l < requirements.txt > /deps.count
            COPY . .
            RUN echo "built $(cat main.txt)" > /built.txt
            USER 1000:1000
            EXPOSE 5000
            CMD ["sh", "-c", "echo $GREETING from $(pwd) as $(id -u); cat /built.txt /deps.count"]
        """,
        "requirements.txt": "flask\ngunicorn\n",
        "main.txt": "v1",
        ".dockerignore": "secret.txt\n",
        "secret.txt": "do not ship",
    })


def test_build_runs_and_the_image_behaves(ctx, bb_image, app):
    result, lines = do_build(ctx, app)
    assert result.cached == 0 and result.filesystem_steps == 5
    config = result.image.config["config"]
    assert config["WorkingDir"] == "/srv/app" and config["User"] == "1000:1000"
    assert config["ExposedPorts"] == {"5000/tcp": {}}
    assert "GREETING=hello" in config["Env"]
    assert config["Cmd"][0] == "sh"
    assert any(line.startswith("[stage-0 5/10] RUN") for line in lines)
    out = run_image(ctx, "app:1")
    assert out.splitlines() == ["hello from /srv/app as 1000", "built v1", "2"]
    assert "do not ship" not in run_image(ctx, "app:1", "sh", "-c", "cat /srv/app/secret.txt 2>&1; true")
    history = result.image.config["history"]
    assert any(h.get("empty_layer") and h["created_by"].startswith("ENV") for h in history)
    assert len(result.image.layers) == len(bb_image.layers) + 5  # WORKDIR, COPY, RUN, COPY, RUN


def test_cache_hits_touch_and_edit(ctx, bb_image, app):
    first, _ = do_build(ctx, app)
    again, _ = do_build(ctx, app)
    assert again.image.digest == first.image.digest  # times come from the cache: same image id
    fs_steps = [s for s in again.steps if s.text.split()[0] in ("RUN", "COPY", "WORKDIR")]
    assert all(s.cached for s in fs_steps)
    first_digest = again.image.digest

    os.utime(app / "main.txt", (time.time() + 100, time.time() + 100))  # touch: no content change
    touched, _ = do_build(ctx, app)
    assert all(s.cached for s in touched.steps if s.text.split()[0] in ("RUN", "COPY", "WORKDIR"))
    assert touched.image.diff_ids == again.image.diff_ids

    (app / "main.txt").write_text("v2")
    edited, _ = do_build(ctx, app)
    states = [(s.text.split()[0], s.cached) for s in edited.steps if s.text.split()[0] in ("RUN", "COPY")]
    assert states == [("COPY", True), ("RUN", True), ("COPY", False), ("RUN", False)]
    assert edited.image.digest != first_digest
    assert "built v2" in run_image(ctx, "app:1")


def test_arg_change_only_reaches_steps_after_its_declaration(ctx, bb_image, tmp_path):
    ctx_dir = write(tmp_path / "argapp", {"Dockerfile": """
        FROM bb:1
        RUN echo early > /early
        ARG VERSION=1
        RUN echo "v$VERSION" > /version
        RUN cat /version
    """})
    do_build(ctx, ctx_dir, build_args={"VERSION": "1"})
    second, _ = do_build(ctx, ctx_dir, build_args={"VERSION": "2"})
    runs = [s.cached for s in second.steps if s.text.startswith("RUN")]
    assert runs == [True, False, False]
    assert run_image(ctx, "app:1", "cat", "/version") == "v2"
    assert "VERSION=2" not in " ".join(second.image.config["config"].get("Env", []))  # ARGs are not persisted


def test_multi_stage_copy_from_and_target(ctx, bb_image, tmp_path):
    ctx_dir = write(tmp_path / "multi", {"Dockerfile": """
        FROM bb:1 AS builder
        RUN mkdir -p /out && echo compiled > /out/app.bin && echo junk > /junk
        FROM bb:1 AS unused
        RUN exit 1
        FROM scratch AS final
        COPY --from=builder /out/app.bin /app.bin
        COPY --from=bb:1 /bin/busybox /bin/busybox
        CMD ["/bin/busybox", "cat", "/app.bin"]
    """})
    result, lines = do_build(ctx, ctx_dir)
    assert not any("exit 1" in line for line in lines)  # the unused stage was not built
    assert run_image(ctx, "app:1") == "compiled"
    only_builder, _ = do_build(ctx, ctx_dir, tag="builder:1", target="builder")
    assert run_image(ctx, "builder:1", "cat", "/junk") == "junk"


def test_heredocs_onbuild_and_user_workdir(ctx, bb_image, tmp_path):
    base = write(tmp_path / "base", {"Dockerfile": """
        FROM bb:1
        ONBUILD COPY hello.txt /hello.txt
        ONBUILD RUN echo triggered > /triggered
    """})
    do_build(ctx, base, tag="onbase:1")
    child = write(tmp_path / "child", {"Dockerfile": """
        FROM onbase:1
        RUN <<EOF
        echo from heredoc > /heredoc.txt
        EOF
        COPY <<EOT /etc/motd
        welcome
        EOT
        RUN cat > /script.txt <<'END'
        literal $HOME
        END
    """, "hello.txt": "hi\n"})
    result, _ = do_build(ctx, child, tag="onchild:1")
    out = run_image(ctx, "onchild:1", "cat", "/hello.txt", "/triggered", "/heredoc.txt", "/etc/motd",
                    "/script.txt")
    assert out.splitlines() == ["hi", "triggered", "from heredoc", "welcome", "literal $HOME"]
    assert "OnBuild" not in result.image.config["config"]


def test_failures_tag_nothing(ctx, bb_image, tmp_path):
    broken = write(tmp_path / "broken", {"Dockerfile": "FROM bb:1\nRUN echo about to fail; exit 7\n"})
    with pytest.raises(BuildError, match="exit code 7") as info:
        do_build(ctx, broken, tag="broken:1")
    assert "about to fail" in str(info.value)
    assert not ctx.conn.execute("SELECT 1 FROM image_tags WHERE name LIKE 'broken%'").fetchone()

    outside = write(tmp_path / "outside", {"Dockerfile": "FROM bb:1\nCOPY ../x /x\n"})
    with pytest.raises(DockerfileError, match="Dockerfile:2: COPY source ../x is outside the build context"):
        do_build(ctx, outside, tag="broken:1")
    (tmp_path / "outside" / "link").symlink_to("/etc/passwd")
    (tmp_path / "outside" / "Dockerfile").write_text("FROM bb:1\nCOPY link /x\n")
    with pytest.raises(DockerfileError, match="outside the build context"):
        do_build(ctx, outside, tag="broken:1")

    missing = write(tmp_path / "missing", {"Dockerfile": "FROM nosuch:1\n"})
    with pytest.raises(DockerfileError, match="not found"):
        do_build(ctx, missing, tag="broken:1")
    syntax = write(tmp_path / "syntax", {"Dockerfile": "FROM bb:1\nRUN echo ok\nBOGUS thing\n"})
    with pytest.raises(DockerfileError, match=r"Dockerfile:3"):
        do_build(ctx, syntax, tag="broken:1")
    parents = write(tmp_path / "parents", {"Dockerfile": "FROM bb:1\nCOPY --parents a/b /x/\n"})
    with pytest.raises(DockerfileError, match="Dockerfile:2: COPY --parents is not supported by this builder"):
        do_build(ctx, parents, tag="broken:1")
    stage = write(tmp_path / "stage", {"Dockerfile": "FROM bb:1\nCOPY --from=nostage /a /a\n"})
    with pytest.raises((DockerfileError, UserError), match="nostage"):
        do_build(ctx, stage, tag="broken:1")
    assert not ctx.conn.execute("SELECT 1 FROM image_tags WHERE name LIKE 'broken%'").fetchone()


def layer_names(ctx, layer: dict) -> list[str]:
    import tarfile

    from paas.image.compress import decompressor
    from paas.image.mediatypes import layer_compression

    with ctx.store.blobs.open_verified(layer["digest"], "layer") as blob:
        with tarfile.open(fileobj=decompressor(layer_compression(layer["mediaType"]), blob), mode="r|") as tar:
            return sorted(m.name.rstrip("/") for m in tar)


def own_network(ctx) -> None:
    """A bridge and subnet of this test's own (parallel tests must not share paas0 with other state DBs)."""
    import secrets

    subnet = f"10.{200 + secrets.randbelow(40)}.{secrets.randbelow(250)}.0/24"
    with open(ctx.paths.config_file, "a") as fh:
        fh.write(f"network:\n  bridge: pb{secrets.token_hex(3)}\n  subnet: {subnet}\n")
    ctx.__dict__.pop("config", None)


def test_run_on_the_bridge_with_the_host_ca_and_nothing_extra_in_the_layer(ctx, runtime_name, bb_image, tmp_path):
    own_network(ctx)
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n")
    ctx_dir = write(tmp_path / "net", {"Dockerfile": """
        FROM bb:1
        RUN ip -4 -o addr show eth0 | grep -q 'inet ' && head -1 "$SSL_CERT_FILE" > /seen \\
            && echo "$PIP_CERT $NODE_EXTRA_CA_CERTS" >> /seen
    """})
    result, _ = do_build(ctx, ctx_dir, network="bridge", ca_bundle=str(ca))
    # only the file the step wrote: no mount points (/etc/hosts, /proc, the CA file, …) in the layer
    assert layer_names(ctx, result.image.layers[-1]) == ["seen"]
    seen = run_image(ctx, "app:1", "cat", "/seen").splitlines()
    assert seen[0] == "-----BEGIN CERTIFICATE-----"
    assert seen[1] == "/run/paas-build/ca-certificates.crt /run/paas-build/ca-certificates.crt"
    assert not any("SSL_CERT_FILE" in e for e in result.image.config["config"].get("Env", []))
    assert ctx.conn.execute("SELECT COUNT(*) FROM ip_leases").fetchone()[0] == 0  # the step's lease is gone


def test_run_cache_mount_persists_between_builds_but_not_in_layers(ctx, bb_image, tmp_path):
    ctx_dir = write(tmp_path / "cachemount", {"Dockerfile": """
        FROM bb:1
        RUN --mount=type=cache,target=/root/.cache \\
            (cat /root/.cache/count 2>/dev/null || echo 0) > /before && \\
            echo $(( $(cat /before) + 1 )) > /root/.cache/count
    """})
    do_build(ctx, ctx_dir)
    second, _ = do_build(ctx, ctx_dir, no_cache=True)
    assert run_image(ctx, "app:1", "cat", "/before") == "1"
    assert layer_names(ctx, second.image.layers[-1]) == ["before"]


def test_add_extracts_a_local_tar(ctx, bb_image, tmp_path):
    """ADD <url> (fetched from the build's network namespace) is tested in test_add_url.py."""
    import io
    import tarfile

    ctx_dir = tmp_path / "adds"
    ctx_dir.mkdir()
    with tarfile.open(ctx_dir / "bundle.tgz", "w:gz") as tar:
        data = b"from the tar\n"
        info = tarfile.TarInfo("pkg/readme.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    write(ctx_dir, {"Dockerfile": """
        FROM bb:1
        ADD bundle.tgz /opt/
    """})
    do_build(ctx, ctx_dir)
    assert run_image(ctx, "app:1", "cat", "/opt/pkg/readme.txt") == "from the tar"


def test_run_has_nat_egress_to_a_server_outside(ctx, bb_image, tmp_path, outside):
    """RUN reaches "the internet" (a namespace of this test, routable only from the host's address)."""
    own_network(ctx)
    server = serve(outside.ns, 9000)
    try:
        ctx_dir = write(tmp_path / "egress", {"Dockerfile": f"""
            FROM bb:1
            RUN nc -w 5 {outside.server_ip} 9000 < /dev/null > /seen-as
        """})
        do_build(ctx, ctx_dir, network="bridge")
    finally:
        stop(server)
    assert run_image(ctx, "app:1", "cat", "/seen-as") == outside.host_ip  # masqueraded


def test_run_tmpfs_mount_is_writable_and_leaves_nothing(ctx, bb_image, tmp_path):
    ctx_dir = write(tmp_path / "tmpfsmount", {"Dockerfile": """
        FROM bb:1
        RUN --mount=type=tmpfs,target=/scratch,size=1m \\
            echo data > /scratch/f && grep -c tmpfs /proc/mounts > /tmpfs-count && cat /scratch/f >> /tmpfs-count
    """})
    result, _ = do_build(ctx, ctx_dir)
    assert layer_names(ctx, result.image.layers[-1]) == ["tmpfs-count"]
    assert run_image(ctx, "app:1", "tail", "-1", "/tmpfs-count") == "data"


def test_an_enormous_context_file_is_streamed_not_loaded(ctx, bb_image, tmp_path):
    import tracemalloc

    ctx_dir = write(tmp_path / "big", {"Dockerfile": "FROM bb:1\nCOPY big.bin /big.bin\n"})
    with open(ctx_dir / "big.bin", "wb") as fh:  # 256 MiB, sparse on the host
        fh.truncate(256 << 20)
        fh.seek(100 << 20)
        fh.write(b"marker")
    tracemalloc.start()
    try:
        result, _ = do_build(ctx, ctx_dir, compression="zstd")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak Python allocation {peak >> 20} MiB while building a 256 MiB file"
    assert run_image(ctx, "app:1", "sh", "-c", "wc -c < /big.bin; grep -c marker /big.bin") == "268435456\n1"


def test_bind_mounts_network_none_and_shell(ctx, bb_image, tmp_path):
    own_network(ctx)
    ctx_dir = write(tmp_path / "binds", {
        "Dockerfile": """
            FROM bb:1 AS tools
            RUN echo tool-output > /tool.txt
            FROM bb:1
            RUN --mount=type=bind,source=scripts,target=/scripts sh /scripts/make.sh > /made
            RUN --mount=type=bind,from=tools,source=/tool.txt,target=/in/tool.txt cat /in/tool.txt > /from-stage
            RUN --network=none echo $(ls /sys/class/net) > /ifaces
            SHELL ["/bin/sh", "-ec"]
            RUN echo "$0 $-" > /shell-flags
        """,
        "scripts/make.sh": "echo made by script\n",
    })
    result, _ = do_build(ctx, ctx_dir, network="bridge")
    out = run_image(ctx, "app:1", "cat", "/made", "/from-stage", "/ifaces", "/shell-flags")
    made, from_stage, ifaces, flags = out.splitlines()
    assert made == "made by script" and from_stage == "tool-output"
    assert "eth0" not in ifaces and "lo" in ifaces  # RUN --network=none: loopback only
    assert "e" in flags.split()[-1]  # SHELL's -e reached the RUN
    names = layer_names(ctx, result.image.layers[-4])  # the bind-mount RUN left no mount point behind
    assert names == ["made"]


def test_unused_build_args_are_reported_but_global_ones_count(ctx, bb_image, tmp_path):
    ctx_dir = write(tmp_path / "gargs", {"Dockerfile": "ARG BASE=bb:1\nFROM $BASE\nRUN true\n"})
    _, lines = do_build(ctx, ctx_dir, build_args={"BASE": "bb:1", "NOPE": "x"})
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == ["warning: build-arg(s) not consumed by the Dockerfile: NOPE"]
