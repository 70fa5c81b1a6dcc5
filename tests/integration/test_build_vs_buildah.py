"""Our Dockerfile builder against an independent one: `buildah bud --layers` (Debian's buildah).

The same Dockerfile and context are built by both, from the same base image (our store's busybox,
exported as an OCI layout and pulled into a throwaway buildah storage). Both results are exported as
OCI layouts, unpacked by umoci, and compared file by file: type, mode, owner, size, content hash,
symlink target (not mtimes). The image configs must agree on Env, Cmd, Entrypoint, WorkingDir, User,
ExposedPorts and Labels.

Buildah runs as root with everything of its own under the test's temp dir: `--root/--runroot` with
the vfs driver (no mounts to leave behind), empty registries configuration (nothing is pulled from a
network), its own containers.conf, runc (crun refuses this host's hybrid cgroup setup), OCI isolation,
no network for RUN.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from paas.build.executor import BuildOptions, build
from paas.image import archive
from paas.image.create import new_config
from tests.conftest import need_root, need_tool

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels")


# ---------------------------------------------------------------------------------------------
# buildah in a sandbox
# ---------------------------------------------------------------------------------------------

class Buildah:
    """buildah with a private storage, configuration and policy under `base`."""

    def __init__(self, base: Path):
        self.base = base
        base.mkdir(parents=True)
        (base / "registries.conf").write_text("unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n")
        (base / "registries.d").mkdir()
        (base / "aliases.conf").write_text("[aliases]\n")
        (base / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        (base / "containers.conf").write_text(textwrap.dedent("""\
            [containers]
            default_ulimits = ["nofile=20000:20000"]
            netns = "none"
            [engine]
            cgroup_manager = "cgroupfs"
            runtime = "runc"
            events_logger = "none"
        """))
        self.globals = [
            "--root", str(base / "storage"), "--runroot", str(base / "run"), "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--registries-conf", str(base / "registries.conf"),
            "--registries-conf-dir", str(base / "registries.d"),
            "--short-name-alias-conf", str(base / "aliases.conf"),
        ]
        self.env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf"),
                    "BUILDAH_ISOLATION": "oci", "STORAGE_DRIVER": "vfs", "TMPDIR": str(base / "tmp")}
        for name in ("BUILDAH_LAYERS", "BUILDAH_FORMAT", "BUILDAH_RUNTIME", "CONTAINERS_REGISTRIES_CONF",
                     "CONTAINERS_STORAGE_CONF", "REGISTRY_AUTH_FILE"):
            self.env.pop(name, None)
        (base / "tmp").mkdir()

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(["buildah", *self.globals, *args], capture_output=True, text=True,
                                env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stderr}\n{result.stdout}")
        return result

    @property
    def policy(self) -> str:
        return f"--signature-policy={self.base / 'policy.json'}"

    def load(self, layout: Path, name: str) -> None:
        """Make `name` (as localhost/name) an image in buildah's storage, from an OCI layout."""
        image_id = self("pull", "--quiet", self.policy, "--policy", "always", f"oci:{layout}:{name}").stdout.split()[-1]
        self("tag", image_id, f"localhost/{name}")

    def build(self, context: Path, tag: str) -> None:
        self("bud", self.policy, "--layers", "--pull=never", "--runtime", "runc", "--isolation", "oci",
             "--network", "none", "--timestamp", "0", "--identity-label=false", "--format", "oci",
             "--ulimit", "nofile=20000:20000", "-t", f"localhost/{tag}", str(context), timeout=300)

    def export(self, tag: str, dest: Path) -> dict:
        """Push to an OCI layout at dest; return the image config."""
        self("push", "--quiet", self.policy, f"localhost/{tag}", f"oci:{dest}:{tag}")
        return image_config(dest, tag)

    def cleanup(self) -> None:
        """Remove every container and image, then anything still mounted below base, then base."""
        errors = []
        for args in (("rm", "--all"), ("rmi", "--all", "--force")):
            result = self(*args, check=False)
            if result.returncode != 0 and "no images" not in result.stderr.lower():
                errors.append(f"buildah {' '.join(args)}: {result.stderr.strip()}")
        unmount_below(self.base)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.base)], check=True)
        assert not errors, errors


def mounts_below(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == str(path):
            points.append(point)
    return points


def unmount_below(path: Path) -> None:
    for point in sorted(mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    assert not mounts_below(path), mounts_below(path)


# ---------------------------------------------------------------------------------------------
# OCI layouts, unpacked trees, configs
# ---------------------------------------------------------------------------------------------

def image_config(layout: Path, name: str) -> dict:
    def blob(digest: str) -> dict:
        algo, hexa = digest.split(":")
        return json.loads((layout / "blobs" / algo / hexa).read_bytes())

    index = json.loads((layout / "index.json").read_bytes())
    [entry] = [m for m in index["manifests"]
               if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == name]
    return blob(blob(entry["digest"])["config"]["digest"])


def unpack(layout: Path, name: str, dest: Path) -> Path:
    subprocess.run(["umoci", "raw", "unpack", "--image", f"{layout}:{name}", str(dest)],
                   check=True, capture_output=True)
    return dest


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: str
    uid: int
    gid: int
    size: int | None = None
    content: str | None = None             # sha256 (files), link target (symlinks), rdev (devices)

    def __str__(self) -> str:
        text = f"{self.kind} {self.mode} {self.uid}:{self.gid}"
        if self.kind == "file":
            text += f" size={self.size} sha256={self.content[:12]}"
        elif self.content is not None:
            text += f" -> {self.content}"
        return text


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path below root (mtimes and atimes ignored)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            mode, owner = f"{stat.S_IMODE(st.st_mode):04o}", (st.st_uid, st.st_gid)
            rel = "/" + str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = Entry("symlink", mode, *owner, content=os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = Entry("dir", mode, *owner)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = Entry("file", mode, *owner, size=st.st_size,
                                 content=hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                out[rel] = Entry(f"special:{stat.S_IFMT(st.st_mode):o}", mode, *owner,
                                 content=f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}")
    return out


def tree_differences(ours: dict[str, Entry], theirs: dict[str, Entry]) -> list[str]:
    lines = []
    for path in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(path), theirs.get(path)
        if mine == other:
            continue
        if other is None:
            lines.append(f"  only in ours:    {path}  ({mine})")
        elif mine is None:
            lines.append(f"  only in buildah: {path}  ({other})")
        else:
            lines.append(f"  differs:         {path}\n      ours:    {mine}\n      buildah: {other}")
    return lines


def buildah_mountpoint_stubs(ours: dict[str, Entry], theirs: dict[str, Entry]) -> set[str]:
    """Paths only buildah has, that are the mount point stubs its RUN leaves in layers.

    buildah (1.28) creates the mount points of a RUN container that the rootfs lacks -- /dev, /proc,
    /sys, /run (for /run/.containerenv) -- as empty root-owned 0755 directories in the container's
    rootfs and commits them with the step's layer. Docker's builders remove such stubs (BuildKit:
    removeMountStubsRecursive in the executor), and so does ours (see test_build.py, "nothing extra in
    the layer"). Only exactly these, only when empty, only when our tree lacks them are ignored.
    """
    stubs = {"/dev", "/proc", "/sys", "/run"}
    return {path for path in stubs
            if path in theirs and path not in ours and theirs[path] == Entry("dir", "0755", 0, 0)
            and not any(p.startswith(path + "/") for p in theirs)}


def config_differences(ours: dict, theirs: dict) -> list[str]:
    mine, other = ours.get("config") or {}, theirs.get("config") or {}
    lines = []
    for key in CONFIG_KEYS:
        a, b = mine.get(key) or None, other.get(key) or None   # absent, null and empty are all "unset"
        if a != b:
            lines.append(f"  {key}:\n      ours:    {json.dumps(a)}\n      buildah: {json.dumps(b)}")
    return lines


# ---------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    dockerfile: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    dirs: tuple[str, ...] = ()
    symlinks: dict[str, str] = field(default_factory=dict)


def tar_bytes(entries: list[tuple], compress: bool = False) -> bytes:
    """(kind, name, mode, uid, gid, extra): file extra=content, dir, symlink/hardlink extra=target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, mode, uid, gid, *extra in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, 1700000000
            if kind == "file":
                info.size = len(extra[0])
                tar.addfile(info, io.BytesIO(extra[0]))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            if kind != "dir":
                info.linkname = extra[0]
            tar.addfile(info)
    return buf.getvalue()


BUNDLE = [
    ("dir", "pkg", 0o755, 0, 0),
    ("file", "pkg/readme.txt", 0o644, 0, 0, b"from the tar\n"),
    ("file", "pkg/bin/tool", 0o750, 1000, 1000, b"#!/bin/sh\necho tool\n"),   # parent dir not in the tar
    ("dir", "pkg/private", 0o700, 1000, 2000),
    ("file", "pkg/private/key", 0o600, 1000, 2000, b"secret\n"),
    ("symlink", "pkg/current", 0o777, 0, 0, "bin/tool"),
    ("hardlink", "pkg/readme.hard", 0o644, 0, 0, "pkg/readme.txt"),
]

CASES = {
    "metadata": Case(
        dockerfile="""
            FROM bbenv:1
            ARG VERSION=1.2
            ARG UNUSED
            ENV APP_HOME=/srv/app PATH=/opt/app/bin:$PATH
            ENV QUOTED="a b c" VERSION=$VERSION EMPTY=
            LABEL org.example.name="demo app" org.example.version=$VERSION
            WORKDIR $APP_HOME
            WORKDIR sub
            USER app:app
            RUN touch by-app && mkdir -p made/by/app && id -u > made/by/app/uid
            USER 1000
            EXPOSE 5000 53/udp 8080/tcp
            ENTRYPOINT ["/bin/sh", "-c"]
            CMD ["echo $VERSION from $APP_HOME"]
        """),
    "shell-form-and-overrides": Case(
        dockerfile="""
            FROM bbenv:1
            ENV A=1
            ENV A=2 B=${A}-b
            ENTRYPOINT echo entry
            CMD echo cmd
            LABEL one=1
            LABEL one=2 two="x y"
            WORKDIR /w
            WORKDIR /
            USER nobody
        """),
    "copy": Case(
        dockerfile="""
            FROM bbenv:1
            COPY a.txt /dest/renamed
            COPY a.txt /dest/dir/
            COPY a.txt b.txt /dest/multi/
            COPY a.txt /srv
            COPY src /dest/contents
            COPY src/ /dest/contents2/
            COPY --chown=1000:1000 src /dest/owned
            COPY --chown=app:extra a.txt /dest/named-owner.txt
            COPY --chmod=0755 script.sh /usr/local/bin/
            COPY --chmod=0640 a.txt /dest/chmod.txt
            COPY private.txt /dest/
            COPY *.txt /dest/glob/
            COPY link-to-a /dest/via-link
            WORKDIR /ctx
            COPY . .
        """,
        files={
            "a.txt": "a\n", "b.txt": "bb\n", "script.sh": "#!/bin/sh\necho hi\n", "private.txt": "p\n",
            "secret.txt": "do not ship\n", "debug.log": "log\n", "keep.log": "keep\n",
            "src/one.txt": "1\n", "src/nested/deep/two.txt": "2\n", "src/nested/run.sh": "#!/bin/sh\n",
            "src/tmp/junk": "junk\n",
            ".dockerignore": "secret.txt\n**/*.log\n!keep.log\nsrc/tmp\n",
        },
        modes={"script.sh": 0o700, "private.txt": 0o600, "src/nested/run.sh": 0o755, "src/nested": 0o750},
        dirs=("src/empty",),
        symlinks={"link-to-a": "a.txt", "src/one.link": "one.txt"},
    ),
    "run-whiteouts": Case(
        dockerfile="""
            FROM bbenv:1
            RUN rm /srv/delete-me.txt && rm -rf /home/app && mkdir -p /var/cache/x && echo 1 > /var/cache/x/one
            RUN rm -rf /var/cache/x && mkdir /var/cache/x && echo 2 > /var/cache/x/two
            RUN rm /bin/vi && ln -s /bin/busybox /usr/bin/vi2 && chmod 0700 /srv/keep.txt \\
                && chown 1000:2000 /srv/keep.txt && echo changed > /etc/motd
            RUN mkdir /data && echo a > /data/a && ln /data/a /data/b && rm -rf /root && echo file > /root
            RUN rm /data/b && rm /var/cache/x/two && mkdir -m 1777 /scratch && umask 077 && echo x > /scratch/f
        """),
    "multi-stage": Case(
        dockerfile="""
            FROM bbenv:1 AS builder
            WORKDIR /build
            COPY src ./src
            RUN mkdir -p /out/bin && cp -r src /out/ && echo built > /out/bin/app \\
                && chmod 0750 /out/bin/app && chown 1000:2000 /out/bin/app && ln -s bin/app /out/app.link
            FROM bbenv:1 AS unused
            RUN exit 1
            FROM bbenv:1
            COPY --from=builder /out /app
            COPY --from=builder /out/bin/app /usr/local/bin/
            COPY --from=builder --chown=1000:1000 /build/src /owned-src
            COPY --from=builder /out/app.link /linked
            COPY --from=bbenv:1 /etc/passwd /passwd-from-image
            CMD ["/usr/local/bin/app"]
        """,
        files={"src/main.c": "int main(void) { return 0; }\n", "src/lib/util.h": "#define X 1\n"},
    ),
    "add-tar": Case(
        dockerfile="""
            FROM bbenv:1
            ADD bundle.tgz /opt/
            ADD bundle.tar /opt/plain
            ADD notatar.tar.gz /opt/raw/
            ADD plain.txt /opt/plain.txt
            ADD --chown=2000:2000 plain.txt /opt/owned.txt
        """,
        files={"bundle.tgz": tar_bytes(BUNDLE, compress=True), "bundle.tar": tar_bytes(BUNDLE),
               "notatar.tar.gz": "just text\n", "plain.txt": "plain\n"},
    ),
}

# cases where our builder is wrong; the reason is the report (strict: a fix turns these into failures)
KNOWN_BUGS: dict[str, str] = {}


def write_context(root: Path, case: Case) -> Path:
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text(textwrap.dedent(case.dockerfile).lstrip("\n"))
    for name, content in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for name in case.dirs:
        (root / name).mkdir(parents=True, exist_ok=True)
    for name, target in case.symlinks.items():
        (root / name).symlink_to(target)
    for name, mode in case.modes.items():
        os.chmod(root / name, mode)
    return root


# ---------------------------------------------------------------------------------------------
# fixtures and the test
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def bbenv_image(ctx, bb_image):
    """bb:1 with the PATH every real base image (busybox, debian, alpine) sets in its config."""
    config = new_config(bb_image.diff_ids, Cmd=["sh"], Env=[DEFAULT_PATH])
    image = ctx.store.add_image(bb_image.layers, config)
    ctx.store.tag("bbenv:1", image)
    return ctx.store.get("bbenv:1")


@pytest.fixture
def buildah(tmp_path, ctx, bb_image, bbenv_image):
    """A buildah sandbox holding bb:1 and bbenv:1, exactly the images of our store."""
    need_root()
    need_tool("buildah")
    need_tool("umoci")
    need_tool("runc")
    layout = archive.export(ctx.store, [("bb:1", bb_image), ("bbenv:1", bbenv_image)], tmp_path / "base-layout")
    sandbox = Buildah(tmp_path / "buildah")
    try:
        sandbox.load(layout, "bb:1")
        sandbox.load(layout, "bbenv:1")
        yield sandbox
    finally:
        sandbox.cleanup()


def case_params():
    for name in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name])] if name in KNOWN_BUGS else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", case_params())
def test_same_image_as_buildah(ctx, buildah, tmp_path, name):
    context = write_context(tmp_path / "context", CASES[name])

    result = build(ctx, BuildOptions(context_dir=context, tags=("app:1",), network="none", progress=lambda _: None))
    ours_layout = archive.export(ctx.store, [("app:1", result.image)], tmp_path / "ours-layout")
    ours_config = image_config(ours_layout, "app:1")
    ours = snapshot(unpack(ours_layout, "app:1", tmp_path / "ours-rootfs"))

    buildah.build(context, "app:1")
    theirs_config = buildah.export("app:1", tmp_path / "buildah-layout")
    theirs = snapshot(unpack(tmp_path / "buildah-layout", "app:1", tmp_path / "buildah-rootfs"))

    for path in buildah_mountpoint_stubs(ours, theirs):
        del theirs[path]
    assert len(ours) > 100  # the whole busybox base is there
    problems = []
    tree = tree_differences(ours, theirs)
    if tree:
        problems.append("file trees differ:\n" + "\n".join(tree))
    config = config_differences(ours_config, theirs_config)
    if config:
        problems.append("configs differ:\n" + "\n".join(config))
    assert not problems, f"case {name}: ours != buildah bud --layers\n" + "\n".join(problems)


def test_the_base_without_path(ctx, buildah, tmp_path):
    """FROM an image without PATH in its Env: Docker's builders (and buildah) add the default PATH."""
    context = write_context(tmp_path / "context", Case("FROM bb:1\nENV A=1\n"))
    result = build(ctx, BuildOptions(context_dir=context, tags=("app:1",), network="none", progress=lambda _: None))
    ours = archive.export(ctx.store, [("app:1", result.image)], tmp_path / "ours-layout")
    buildah.build(context, "app:1")
    theirs = buildah.export("app:1", tmp_path / "buildah-layout")
    assert config_differences(image_config(ours, "app:1"), theirs) == []
