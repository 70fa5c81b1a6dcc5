"""Our Dockerfile builder against an independent one: `buildah bud --layers` (Debian's buildah).

The same Dockerfile and context are built by both, from the same base image (our store's busybox,
exported as an OCI layout and pulled into a throwaway buildah storage). Both results are exported as
OCI layouts, unpacked by umoci, and compared file by file: type, mode, owner, size, content hash,
symlink target (not mtimes). The image configs must agree on Env, Cmd, Entrypoint, WorkingDir, User,
ExposedPorts and Labels.

Buildah runs as root with everything of its own under the test's temp dir (see Buildah): storage
(`--root/--runroot`, overlay driver), registries configuration (empty: nothing can come from a network),
signature policy, containers.conf, TMPDIR; in a private mount namespace; RUN with runc (crun refuses
this host's hybrid cgroup setup), OCI isolation, cgroupfs, no network. Its storage is emptied
(`rm --all`, `rmi --all`) and deleted after each test.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import stat
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator
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

class BuildahError(Exception):
    """buildah itself failed (not an AssertionError: the xfail cases expect only a comparison to fail)."""


class Buildah:
    """buildah with a private storage, configuration, policy and temp dirs under `base`.

    Every call runs in a private mount namespace (unshare): whatever buildah and runc mount there (the
    overlay driver's layer mounts, the RUN containers' rootfs) goes away with the process, so nothing
    can be left mounted on the host. In that namespace /var/lib/containers (where buildah 1.28's commit
    keeps its blob-info cache whatever --root says) is covered by a directory of ours when it exists.
    """

    def __init__(self, base: Path, driver: str = "overlay"):
        self.base = base
        base.mkdir(parents=True)
        for name in ("tmp", "varlib", "registries.d"):
            (base / name).mkdir()
        (base / "registries.conf").write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        (base / "aliases.conf").write_text("[aliases]\n")
        (base / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        (base / "containers.conf").write_text(textwrap.dedent("""\
            [containers]
            default_ulimits = ["nofile=20000:20000"]
            netns = "none"
            [engine]
            cgroup_manager = "cgroupfs"
            runtime = "runc"
        """))
        (base / "in-namespace.sh").write_text(textwrap.dedent(f"""\
            #!/bin/sh
            set -e
            if [ -d /var/lib/containers ]; then mount --bind {base / "varlib"} /var/lib/containers; fi
            exec buildah "$@"
        """))
        os.chmod(base / "in-namespace.sh", 0o755)
        self.argv = [
            "unshare", "--mount", "--propagation", "private", str(base / "in-namespace.sh"),
            "--root", str(base / "storage"), "--runroot", str(base / "run"), "--storage-driver", driver,
            "--cgroup-manager", "cgroupfs",
            "--registries-conf", str(base / "registries.conf"),
            "--registries-conf-dir", str(base / "registries.d"),
            "--short-name-alias-conf", str(base / "aliases.conf"),
        ]
        self.env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf"), "TMPDIR": str(base / "tmp"),
                    "BUILDAH_ISOLATION": "oci", "STORAGE_DRIVER": driver}
        for name in ("BUILDAH_LAYERS", "BUILDAH_FORMAT", "BUILDAH_RUNTIME", "CONTAINERS_REGISTRIES_CONF",
                     "CONTAINERS_STORAGE_CONF", "REGISTRY_AUTH_FILE", "STORAGE_OPTS"):
            self.env.pop(name, None)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.argv, *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise BuildahError(f"buildah {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stderr}\n{result.stdout}")
        return result

    @property
    def policy(self) -> str:
        return f"--signature-policy={self.base / 'policy.json'}"

    def load(self, layout: Path, name: str) -> None:
        """Make `name` (as localhost/name) an image in buildah's storage, from an OCI layout."""
        image_id = self("pull", "--quiet", self.policy, f"oci:{layout}:{name}").stdout.split()[-1]
        self("tag", image_id, f"localhost/{name}")

    def bud_args(self, context: Path, tag: str) -> list[str]:
        return ["bud", self.policy, "--layers", "--pull=never", "--runtime", "runc", "--isolation", "oci",
                "--network", "none", "--timestamp", "0", "--identity-label=false", "--format", "oci",
                "--ulimit", "nofile=20000:20000", "-t", f"localhost/{tag}", str(context)]

    def build(self, context: Path, tag: str) -> None:
        self(*self.bud_args(context, tag), timeout=300)

    @contextlib.contextmanager
    def building(self, context: Path, tag: str, timeout: float = 300) -> Iterator[None]:
        """Run `buildah bud` in the background while the body runs (our build); wait for it at the end.

        It is always waited for (killed on timeout); its failure is raised only when the body succeeded.
        """
        log = self.base / "tmp" / f"bud-{secrets.token_hex(4)}.log"
        with open(log, "w+") as out:
            proc = subprocess.Popen([*self.argv, *self.bud_args(context, tag)], stdout=out,
                                    stderr=subprocess.STDOUT, env=self.env)
            try:
                yield
            finally:
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
            out.seek(0)
            output = out.read()
        log.unlink()
        if code != 0:
            raise BuildahError(f"buildah bud exited {code}:\n{output}")

    def export(self, tag: str, dest: Path) -> dict:
        """Push to an OCI layout at dest; return the image config."""
        self("push", "--quiet", self.policy, f"localhost/{tag}", f"oci:{dest}:{tag}")
        return image_config(dest, tag)

    def cleanup(self) -> None:
        """Remove every container and image, then anything still mounted below base, then base."""
        errors = []
        for args in (("rm", "--all"), ("rmi", "--all", "--force")):
            result = self(*args, check=False)
            if result.returncode != 0:
                errors.append(f"buildah {' '.join(args)}: {result.stderr.strip()}")
        unmount_below(self.base)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.base)], check=True)
        if errors:
            raise BuildahError("; ".join(errors))


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
    links: int | None = None               # files: hard links to it in the tree

    def __str__(self) -> str:
        text = f"{self.kind} {self.mode} {self.uid}:{self.gid}"
        if self.kind == "file":
            text += f" size={self.size} sha256={self.content[:12]} links={self.links}"
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
                                 content=hashlib.sha256(path.read_bytes()).hexdigest(), links=st.st_nlink)
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
    /sys, /run (for /run/.containerenv) as empty root-owned 0755 directories, /etc/hostname as an empty
    0755 file (its bind mount target; seen when the same RUN changed /etc) -- and commits them with the
    step's layer. Docker's builders remove such stubs (BuildKit: executor.MountStubsCleaner after every
    RUN), and so does ours (test_build.py: "nothing extra in the layer"). Only exactly these, only with
    exactly that shape, only when our tree lacks them, are ignored.
    """
    empty = hashlib.sha256(b"").hexdigest()
    stubs = {"/dev": Entry("dir", "0755", 0, 0), "/proc": Entry("dir", "0755", 0, 0),
             "/sys": Entry("dir", "0755", 0, 0), "/run": Entry("dir", "0755", 0, 0),
             "/etc/hostname": Entry("file", "0755", 0, 0, size=0, content=empty, links=1)}
    return {path for path, shape in stubs.items()
            if path not in ours and theirs.get(path) == shape and not any(p.startswith(path + "/") for p in theirs)}


def pinned_differences(case: Case, ours: dict[str, Entry], theirs: dict[str, Entry]) -> list[str]:
    """Check the case's known buildah-vs-Docker differences exactly, then drop those paths from both trees.

    A pinned path must look exactly as stated on each side (None: absent), so a change on either side
    (a fix in ours, another buildah) shows up as a failure instead of being hidden.
    """
    problems = []
    for path, (mine, other) in case.buildah_differs.items():
        if ours.get(path) != mine or theirs.get(path) != other:
            problems.append(f"  pinned {path}: expected ours={mine} buildah={other}, "
                            f"got ours={ours.get(path)} buildah={theirs.get(path)}")
        ours.pop(path, None)
        theirs.pop(path, None)
    return problems


def env_as_mapping(env: list[str] | None) -> dict[str, str] | list[str] | None:
    """Env as name -> value; the list itself when a name repeats (a bug in either builder).

    Compared as a mapping because the order differs where it means nothing: on a redefinition Docker
    replaces the variable in place (BuildKit addEnv, the classic builder alike), buildah removes it and
    appends it (Builder.SetEnv). Each name is set once either way, so the environment is the same.
    """
    if not env:
        return None
    pairs = [entry.partition("=")[::2] for entry in env]
    mapping = dict(pairs)
    return mapping if len(mapping) == len(pairs) else env


def config_differences(ours: dict, theirs: dict) -> list[str]:
    mine, other = ours.get("config") or {}, theirs.get("config") or {}
    lines = []
    for key in CONFIG_KEYS:
        a, b = mine.get(key) or None, other.get(key) or None   # absent, null and empty are all "unset"
        if key == "Env":
            same = env_as_mapping(a) == env_as_mapping(b)
        else:
            same = a == b
        if not same:
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
    # where buildah 1.28 differs from Docker (and we follow Docker): path -> (ours, buildah); None: absent
    buildah_differs: dict[str, tuple[Entry | None, Entry | None]] = field(default_factory=dict)
    # sanity: the case did what it means to (in both trees), so an equal comparison is not vacuous
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()


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
            RUN echo "$VERSION $UNUSED $QUOTED" > version
            USER app:app
            RUN cd /home/app && touch by-app && mkdir -p made/by && id -u > made/by/uid && umask 027 && echo x > x
            USER 1000
            EXPOSE 5000 53/udp 8080/tcp
            ENTRYPOINT ["/bin/sh", "-c"]
            CMD ["echo $VERSION from $APP_HOME"]
        """,
        present=("/srv/app/sub/version", "/home/app/by-app", "/home/app/made/by/uid", "/home/app/x")),
    "workdir-after-user": Case(
        dockerfile="""
            FROM bbenv:1
            USER app:app
            WORKDIR /home/app/work/deep
            RUN id -u > /tmp/uid
        """,
        present=("/home/app/work/deep", "/tmp/uid")),
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
        """,
        # Docker: "If the WORKDIR doesn't exist, it will be created even if it's not used in any
        # subsequent Dockerfile instruction" (BuildKit mkdirs it in the WORKDIR step). buildah 1.28 only
        # creates a WORKDIR when a later RUN/COPY/ADD uses it (containers/buildah#2402, #2475).
        buildah_differs={"/w": (Entry("dir", "0755", 0, 0), None)}),
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
            COPY --chmod=0750 src /dest/chmod-dir
            COPY --chown=1000:1000 a.txt /new/parents/
            COPY --chown=1000:1000 src /new/tree/
            COPY private.txt /dest/
            COPY *.txt /dest/glob/
            COPY link-to-a /dest/via-link
            RUN ln -s /srv /linked-srv && ln -s missing /dangling
            COPY a.txt /linked-srv/through-link.txt
            COPY b.txt /linked-srv/new/
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
        present=("/dest/renamed", "/dest/dir/a.txt", "/dest/multi/b.txt", "/srv/a.txt", "/dest/contents/one.txt",
                 "/dest/contents/empty", "/dest/contents/one.link", "/dest/contents2/nested/deep/two.txt",
                 "/dest/owned/nested/run.sh", "/usr/local/bin/script.sh", "/dest/glob/private.txt",
                 "/dest/via-link", "/ctx/keep.log", "/ctx/src/one.txt", "/srv/through-link.txt", "/srv/new/b.txt"),
        absent=("/dest/contents/src", "/ctx/secret.txt", "/ctx/debug.log", "/ctx/src/tmp", "/dest/glob/secret.txt"),
        # the directory COPY --chmod creates for a directory source: BuildKit (since moby/buildkit#4945 was
        # fixed, v0.14) gives it the --chmod mode, like everything it copies; buildah 1.28 makes it 0755
        # (as BuildKit did before). The contents get 0750 on both sides.
        buildah_differs={"/dest/chmod-dir": (Entry("dir", "0750", 0, 0), Entry("dir", "0755", 0, 0))},
    ),
    "run-whiteouts": Case(
        dockerfile="""
            FROM bbenv:1
            RUN rm /srv/delete-me.txt && rm -rf /home/app && mkdir -p /var/cache/x && echo 1 > /var/cache/x/one
            RUN rm -rf /var/cache/x && mkdir /var/cache/x && echo 2 > /var/cache/x/two
            RUN rm /bin/vi && ln -s /bin/busybox /bin/vi2 && chmod 0700 /srv/keep.txt \\
                && chown 1000:2000 /srv/keep.txt && echo changed > /etc/motd
            RUN mkdir /data && echo a > /data/a && ln /data/a /data/b && rm -rf /root && echo file > /root
            RUN rm /data/b && rm /var/cache/x/two && mkdir -m 1777 /scratch && umask 077 && echo x > /scratch/f \\
                && rm /etc/motd && mkdir /etc/motd && echo in > /etc/motd/inside
        """,
        present=("/var/cache/x", "/bin/vi2", "/root", "/data/a", "/scratch/f", "/etc/motd/inside"),
        absent=("/srv/delete-me.txt", "/home/app", "/var/cache/x/one", "/var/cache/x/two", "/bin/vi", "/data/b")),
    "multi-stage": Case(
        dockerfile="""
            ARG BASE=bbenv:1
            FROM ${BASE} AS builder
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
        present=("/app/bin/app", "/app/src/lib/util.h", "/app/app.link", "/usr/local/bin/app", "/owned-src/main.c",
                 "/linked", "/passwd-from-image"),
        absent=("/build", "/out"),
    ),
    "add-tar": Case(
        dockerfile="""
            FROM bbenv:1
            ADD bundle.tgz /opt/
            ADD bundle.tar /opt/plain
            ADD notatar.tar.gz /opt/raw/
            ADD plain.txt /opt/plain.txt
            ADD --chown=2000:2000 plain.txt /opt/owned.txt
            ENTRYPOINT ["/bin/cat"]
        """,
        files={"bundle.tgz": tar_bytes(BUNDLE, compress=True), "bundle.tar": tar_bytes(BUNDLE),
               "notatar.tar.gz": "just text\n", "plain.txt": "plain\n"},
        present=("/opt/pkg/readme.hard", "/opt/pkg/bin/tool", "/opt/pkg/private/key", "/opt/plain/pkg/current",
                 "/opt/raw/notatar.tar.gz", "/opt/plain.txt", "/opt/owned.txt"),
        absent=("/opt/bundle.tgz", "/opt/plain/bundle.tar"),
    ),
}

# cases where our builder is wrong; the reason is the report (strict: a fix turns these into failures)
# cases where our builder is known to differ from Docker's semantics (strict xfail: a fix shows up)
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
        marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=KNOWN_BUGS[name])] \
            if name in KNOWN_BUGS else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", list(case_params()))
def test_same_image_as_buildah(ctx, buildah, tmp_path, name):
    context = write_context(tmp_path / "context", CASES[name])

    with buildah.building(context, "app:1"):   # both builders at once: the test takes half the time
        result = build(ctx, BuildOptions(context_dir=context, tags=("app:1",), network="none",
                                         progress=lambda _: None))
        ours_layout = archive.export(ctx.store, [("app:1", result.image)], tmp_path / "ours-layout")
        ours_config = image_config(ours_layout, "app:1")
        ours = snapshot(unpack(ours_layout, "app:1", tmp_path / "ours-rootfs"))
    theirs_config = buildah.export("app:1", tmp_path / "buildah-layout")
    theirs = snapshot(unpack(tmp_path / "buildah-layout", "app:1", tmp_path / "buildah-rootfs"))

    for path in buildah_mountpoint_stubs(ours, theirs):
        del theirs[path]
    case = CASES[name]
    pinned = pinned_differences(case, ours, theirs)
    assert len(ours) > 100  # the whole busybox base is there
    for tree_name, tree in (("ours", ours), ("buildah", theirs)):
        missing, extra = [p for p in case.present if p not in tree], [p for p in case.absent if p in tree]
        assert not missing and not extra, f"{tree_name}: lacks {missing}, has {extra}"
    problems = ["known differences changed:\n" + "\n".join(pinned)] if pinned else []
    tree = tree_differences(ours, theirs)
    if tree:
        problems.append("file trees differ:\n" + "\n".join(tree))
    config = config_differences(ours_config, theirs_config)
    if config:
        problems.append("configs differ:\n" + "\n".join(config))
    assert not problems, f"case {name}: ours != buildah bud --layers\n" + "\n".join(problems)


def test_the_base_without_path(ctx, buildah, tmp_path):
    """FROM an image without PATH in its Env: Docker's builders (and buildah) add the default PATH.

    BuildKit (dockerfile2llb: "make sure that PATH is always set") and the classic builder
    (dispatchState.setDefaultPath) both append PATH=<default> to a stage's Env when the base has none.
    """
    context = write_context(tmp_path / "context", Case("FROM bb:1\nENV A=1\n"))
    result = build(ctx, BuildOptions(context_dir=context, tags=("app:1",), network="none", progress=lambda _: None))
    ours = archive.export(ctx.store, [("app:1", result.image)], tmp_path / "ours-layout")
    buildah.build(context, "app:1")
    theirs = buildah.export("app:1", tmp_path / "buildah-layout")
    assert config_differences(image_config(ours, "app:1"), theirs) == []
