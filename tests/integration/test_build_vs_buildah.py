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
import re
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
from paas.errors import DockerfileError
from paas.image import archive
from paas.image.create import new_config
from tests.conftest import need_root, need_tool

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes")
# our message for several sources into a non-directory, and buildah 1.28's for COPY flags it lacks
MANY = "When using {} with more than one source file, the destination must be a directory and end with a /"
BUILDAH_COPY_FLAGS = "COPY only supports the --chmod=<permissions> --chown=<uid:gid> and the --from=<image|stage> flags"


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

    def bud_args(self, context: Path, tag: str, build_args: dict[str, str] | None = None) -> list[str]:
        args = [f"--build-arg={name}={value}" for name, value in (build_args or {}).items()]
        return ["bud", self.policy, "--layers", "--pull=never", "--runtime", "runc", "--isolation", "oci",
                "--network", "none", "--timestamp", "0", "--identity-label=false", "--format", "oci",
                "--ulimit", "nofile=20000:20000", *args, "-t", f"localhost/{tag}", str(context)]

    def build(self, context: Path, tag: str, build_args: dict[str, str] | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
        return self(*self.bud_args(context, tag, build_args), timeout=300, check=check)

    @contextlib.contextmanager
    def building(self, context: Path, tag: str, timeout: float = 300,
                 build_args: dict[str, str] | None = None) -> Iterator[None]:
        """Run `buildah bud` in the background while the body runs (our build); wait for it at the end.

        It is always waited for (killed on timeout); its failure is raised only when the body succeeded.
        """
        log = self.base / "tmp" / f"bud-{secrets.token_hex(4)}.log"
        with open(log, "w+") as out:
            proc = subprocess.Popen([*self.argv, *self.bud_args(context, tag, build_args)], stdout=out,
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


def config_differences(ours: dict, theirs: dict, pinned: dict | None = None) -> list[str]:
    """Differences in CONFIG_KEYS; a pinned key must hold exactly its (ours, buildah) values instead."""
    mine, other = ours.get("config") or {}, theirs.get("config") or {}
    lines = []
    for key in CONFIG_KEYS:
        a, b = mine.get(key) or None, other.get(key) or None   # absent, null and empty are all "unset"
        if key in (pinned or {}):
            expected = tuple(env_as_mapping(v) if key == "Env" else v for v in pinned[key])
            got = (env_as_mapping(a), env_as_mapping(b)) if key == "Env" else (a, b)
            if got != expected:
                lines.append(f"  pinned {key}: expected ours, buildah = {expected}, got {got}")
            continue
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
    build_args: dict[str, str] = field(default_factory=dict)
    # image config keys where buildah 1.28 differs from Docker: key -> (ours, buildah)
    config_differs: dict[str, tuple[object, object]] = field(default_factory=dict)
    # buildah 1.28 cannot build this Dockerfile (its error says this): ours is checked alone, on `expected`
    buildah_refuses: str = ""
    expected: dict[str, Entry | None] = field(default_factory=dict)   # exact entries of our tree
    # where buildah 1.28 differs from Docker (and we follow Docker): path -> (ours, buildah); None: absent
    buildah_differs: dict[str, tuple[Entry | None, Entry | None]] = field(default_factory=dict)
    # sanity: the case did what it means to (in both trees), so an equal comparison is not vacuous
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    contents: dict[str, str] = field(default_factory=dict)  # what files hold in our tree (Docker's result)


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


SHA_A = hashlib.sha256(b"a\n").hexdigest()


def text_file(text: str, mode: str = "0644", uid: int = 0, gid: int = 0) -> Entry:
    """The entry of a regular file holding text (one link)."""
    data = text.encode()
    return Entry("file", mode, uid, gid, len(data), hashlib.sha256(data).hexdigest(), 1)

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
    # ARG then ENV of the same name: the ENV wins in every later instruction, over --build-arg too
    "arg-then-env": Case(
        dockerfile="""
            FROM bbenv:1
            ARG X=a
            ARG P=1
            ENV X=b
            ENV P=2
            RUN echo "$X" > /run-expanded.txt && env | grep ^X= > /run-env.txt
            COPY $X.txt /copied-$X/
            ADD $X.txt /added-$X.txt
            WORKDIR /work-$X
            LABEL seen=$X
            EXPOSE 800$P
            VOLUME /volume-$X
            ENV Y=$X
            USER $X
        """,
        files={"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"},
        build_args={"X": "c", "P": "3"},
        present=("/run-expanded.txt", "/run-env.txt", "/copied-b/b.txt", "/added-b.txt"),
        absent=("/copied-c", "/copied-a", "/work-c"),
        contents={"/run-expanded.txt": "b\n", "/run-env.txt": "X=b\n"},
        buildah_differs={"/work-b": (Entry("dir", "0755", 0, 0), None)},   # buildah: a WORKDIR nothing uses
    ),
    # ENV then ARG of the same name: BuildKit's dispatchArg sets the ARG's value in the build environment
    # after ENV did (llb.State.AddEnv, the later wins), so RUN and expansions see the build arg; the image
    # config keeps the ENV value. buildah 1.28 keeps the ENV value everywhere (as Docker's classic builder).
    "env-then-arg": Case(
        dockerfile="""
            FROM bbenv:1
            ENV X=b
            ARG X
            RUN echo "$X" > /run-expanded.txt && env | grep ^X= > /run-env.txt
            COPY $X.txt /copied/
            LABEL seen=$X
            ENV Y=$X
        """,
        files={"b.txt": "b\n", "c.txt": "c\n"},
        build_args={"X": "c"},
        contents={"/run-expanded.txt": "c\n", "/run-env.txt": "X=c\n"},
        buildah_differs={
            "/run-expanded.txt": (text_file("c\n"), text_file("b\n")),
            "/run-env.txt": (text_file("X=c\n"), text_file("X=b\n")),
            "/copied/c.txt": (text_file("c\n"), None),
            "/copied/b.txt": (None, text_file("b\n")),
        },
        config_differs={"Labels": ({"seen": "c"}, {"seen": "b"}),
                        "Env": ([DEFAULT_PATH, "X=b", "Y=c"], [DEFAULT_PATH, "X=b", "Y=b"])},
    ),
    # a stage FROM an earlier stage inherits its ARGs (BuildKit dispatchState.init takes the parent's state;
    # the Dockerfile reference: "An ARG variable declared within a build stage is automatically inherited by
    # other stages based on that stage")
    "stage-inherits-args": Case(
        dockerfile="""
            FROM bbenv:1 AS base
            ARG V=from-base
            ARG W
            ENV E=env
            FROM base
            RUN echo "V=$V W=$W E=$E" > /inherited.txt
        """,
        build_args={"W": "given"},
        contents={"/inherited.txt": "V=from-base W=given E=env\n"},
        # buildah 1.28: ARGs end with their stage
        buildah_differs={"/inherited.txt": (text_file("V=from-base W=given E=env\n"), text_file("V= W= E=env\n"))},
    ),
    # implicit parents: mode 0755, or the --chmod mode (BuildKit since fsutil#228), owner the --chown user
    "implicit-parents": Case(
        dockerfile="""
            FROM bbenv:1
            COPY --chmod=0640 a.txt /p1/sub/a.txt
            COPY --chown=1000:1000 a.txt /p2/sub/
            COPY --chmod=0750 --chown=app:app src /p3/deep/tree
            COPY --chmod=0600 a.txt b.txt /p4/
            COPY a.txt /p5/sub/
            ADD --chown=2000:2000 a.txt /p6/sub/a.txt
            COPY a.txt b.txt /srv
        """,
        files={"a.txt": "a\n", "b.txt": "bb\n", "src/one.txt": "1\n"},
        present=("/p1/sub/a.txt", "/p2/sub/a.txt", "/p3/deep/tree/one.txt", "/p4/b.txt", "/p5/sub/a.txt",
                 "/p6/sub/a.txt", "/srv/a.txt", "/srv/b.txt"),
        # buildah 1.28 makes implicit parents 0755 whatever --chmod says (as BuildKit did before fsutil#228);
        # owners agree: the --chown user (/p2, /p3, /p6), root otherwise (/p5)
        buildah_differs={
            "/p1": (Entry("dir", "0640", 0, 0), Entry("dir", "0755", 0, 0)),
            "/p1/sub": (Entry("dir", "0640", 0, 0), Entry("dir", "0755", 0, 0)),
            "/p3": (Entry("dir", "0750", 1000, 1000), Entry("dir", "0755", 1000, 1000)),
            "/p3/deep": (Entry("dir", "0750", 1000, 1000), Entry("dir", "0755", 1000, 1000)),
            "/p3/deep/tree": (Entry("dir", "0750", 1000, 1000), Entry("dir", "0755", 1000, 1000)),
            "/p4": (Entry("dir", "0600", 0, 0), Entry("dir", "0755", 0, 0)),
        },
    ),
    # WORKDIR creates what is missing 0755, owned by the USER of the moment (numeric ids need no passwd
    # entry) and leaves an existing directory as it is
    "workdir-modes": Case(
        dockerfile="""
            FROM bbenv:1
            RUN mkdir -m 0700 /srv/private && umask 077
            WORKDIR /srv/private
            WORKDIR /w1/w2
            USER app
            WORKDIR /tmp/app-owned/deeper
            WORKDIR relative
            USER 1234:1234
            WORKDIR /num/dir
            RUN pwd > /tmp/pwd.txt
        """,
        present=("/num/dir", "/tmp/pwd.txt", "/srv/private"),
        contents={"/tmp/pwd.txt": "/num/dir\n"},
        # BuildKit mkdirs every WORKDIR (llb.Mkdir 0755 WithParents, owned by USER); buildah 1.28 only the
        # one a later RUN uses (/num/dir: the same 0755 1234:1234 on both sides; /srv/private stays 0700)
        buildah_differs={
            "/w1": (Entry("dir", "0755", 0, 0), None),
            "/w1/w2": (Entry("dir", "0755", 0, 0), None),
            "/tmp/app-owned": (Entry("dir", "0755", 1000, 1000), None),
            "/tmp/app-owned/deeper": (Entry("dir", "0755", 1000, 1000), None),
            "/tmp/app-owned/deeper/relative": (Entry("dir", "0755", 1000, 1000), None),
        },
    ),
}

# Dockerfiles buildah 1.28 cannot build (flags and syntax newer than it): ours is checked against what
# BuildKit makes, and buildah's refusal is pinned, so a buildah that learns them shows up here.
OURS_ALONE = {
    # BuildKit copies a --link step into an empty tree and lays its layer over the stage (MergeOp; not with
    # --chmod): a symlink on the way is not followed but replaced by a directory, and the parent
    # directories the copy made (0755, root or the --chown owner) replace the mode and owner of existing ones
    "copy-link": Case(
        dockerfile="""
            FROM bbenv:1
            RUN ln -s /srv /linked-srv && ln -s /srv /linked-srv2 && mkdir -m 0700 /home/app/private \\
                && chown app:app /home/app/private && chmod 0750 /home/app
            COPY --link a.txt /linked-srv/through.txt
            COPY --link --chmod=0644 a.txt /linked-srv2/followed.txt
            COPY --link a.txt /home/app/linked.txt
            COPY --link --chown=1000:1000 src /opt/tree/
            COPY --link a.txt b.txt /srv/
            COPY a.txt /after-link.txt
        """,
        files={"a.txt": "a\n", "b.txt": "bb\n", "src/one.txt": "1\n"},
        present=("/linked-srv2", "/srv/followed.txt", "/home/app/private", "/opt/tree/one.txt", "/srv/a.txt"),
        buildah_refuses=BUILDAH_COPY_FLAGS,
        expected={
            "/linked-srv": Entry("dir", "0755", 0, 0),
            "/linked-srv/through.txt": Entry("file", "0644", 0, 0, 2, SHA_A, 1),
            "/srv/through.txt": None,
            "/linked-srv2": Entry("symlink", "0777", 0, 0, content="/srv"),       # --chmod: no --link
            "/srv/followed.txt": Entry("file", "0644", 0, 0, 2, SHA_A, 1),
            "/home/app": Entry("dir", "0755", 0, 0),                               # was 0750 app:app
            "/home/app/private": Entry("dir", "0700", 1000, 1000),
            "/home/app/linked.txt": Entry("file", "0644", 0, 0, 2, SHA_A, 1),
            "/opt": Entry("dir", "0755", 1000, 1000),
            "/opt/tree": Entry("dir", "0755", 1000, 1000),
            "/opt/tree/one.txt": Entry("file", "0644", 1000, 1000, 2, hashlib.sha256(b"1\n").hexdigest(), 1),
            "/srv/keep.txt": Entry("file", "0644", 0, 0, 5, hashlib.sha256(b"keep\n").hexdigest(), 1),
            "/srv/b.txt": Entry("file", "0644", 0, 0, 3, hashlib.sha256(b"bb\n").hexdigest(), 1),
            "/after-link.txt": Entry("file", "0644", 0, 0, 2, SHA_A, 1),
        },
    ),
    "shell-heredocs": Case(
        dockerfile="""
            FROM bbenv:1
            SHELL ["/bin/sh", "-e", "-c"]
            RUN <<EOF
            echo "plain $0" > /heredoc-plain.txt
            EOF
            RUN <<EOF
            #!/bin/awk -f
            BEGIN { print "awk ran", ENVIRON["HOME"] > "/heredoc-program.txt" }
            EOF
            RUN cat <<A > /heredoc-fed.txt
            fed $HOME
            A
            SHELL ["/bin/busybox", "ash", "-c"]
            RUN <<-EOT
            \techo "tabs $0" > /heredoc-tabs.txt
            \tEOT
            RUN <<ONE cat > /heredoc-one.txt && <<TWO cat > /heredoc-two.txt
            first
            ONE
            second
            TWO
        """,
        present=("/heredoc-plain.txt", "/heredoc-program.txt", "/heredoc-fed.txt", "/heredoc-tabs.txt",
                 "/heredoc-one.txt", "/heredoc-two.txt"),
        absent=("/dev", "/dev/pipes"),   # the program's mount point is not left in the layer
        contents={"/heredoc-plain.txt": "plain /bin/sh\n", "/heredoc-program.txt": "awk ran /root\n",
                  "/heredoc-fed.txt": "fed /root\n", "/heredoc-tabs.txt": "tabs ash\n",
                  "/heredoc-one.txt": "first\n", "/heredoc-two.txt": "second\n"},
        buildah_refuses='Unknown instruction: "ECHO"',   # it reads the heredoc's lines as instructions
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

    case = CASES[name]
    with buildah.building(context, "app:1", build_args=case.build_args):  # both at once: half the time
        result = build(ctx, BuildOptions(context_dir=context, tags=("app:1",), network="none",
                                         build_args=case.build_args, progress=lambda _: None))
        ours_layout = archive.export(ctx.store, [("app:1", result.image)], tmp_path / "ours-layout")
        ours_config = image_config(ours_layout, "app:1")
        ours = snapshot(unpack(ours_layout, "app:1", tmp_path / "ours-rootfs"))
    theirs_config = buildah.export("app:1", tmp_path / "buildah-layout")
    theirs = snapshot(unpack(tmp_path / "buildah-layout", "app:1", tmp_path / "buildah-rootfs"))

    for path in buildah_mountpoint_stubs(ours, theirs):
        del theirs[path]
    for path, text in case.contents.items():   # what Docker's builders make, checked on ours
        assert ours[path].content == hashlib.sha256(text.encode()).hexdigest(), f"{path} should hold {text!r}"
    pinned = pinned_differences(case, ours, theirs)
    assert len(ours) > 100  # the whole busybox base is there
    for tree_name, tree in (("ours", ours), ("buildah", theirs)):
        missing, extra = [p for p in case.present if p not in tree], [p for p in case.absent if p in tree]
        assert not missing and not extra, f"{tree_name}: lacks {missing}, has {extra}"
    problems = ["known differences changed:\n" + "\n".join(pinned)] if pinned else []
    tree = tree_differences(ours, theirs)
    if tree:
        problems.append("file trees differ:\n" + "\n".join(tree))
    config = config_differences(ours_config, theirs_config, case.config_differs)
    if config:
        problems.append("configs differ:\n" + "\n".join(config))
    assert not problems, f"case {name}: ours != buildah bud --layers\n" + "\n".join(problems)


@pytest.mark.parametrize("name", list(OURS_ALONE))
def test_what_buildah_cannot_build(ctx, buildah, tmp_path, name):
    case = OURS_ALONE[name]
    context = write_context(tmp_path / "context", case)
    refused = buildah.build(context, "app:1", case.build_args, check=False)
    assert refused.returncode != 0 and case.buildah_refuses in refused.stderr + refused.stdout, refused.stderr

    result = build(ctx, BuildOptions(context_dir=context, tags=("app:1",), network="none",
                                     build_args=case.build_args, progress=lambda _: None))
    layout = archive.export(ctx.store, [("app:1", result.image)], tmp_path / "ours-layout")
    ours = snapshot(unpack(layout, "app:1", tmp_path / "ours-rootfs"))
    missing, extra = [p for p in case.present if p not in ours], [p for p in case.absent if p in ours]
    assert not missing and not extra, f"ours lacks {missing}, has {extra}"
    for path, text in case.contents.items():
        assert ours[path].content == hashlib.sha256(text.encode()).hexdigest(), f"{path} should hold {text!r}"
    wrong = [f"  {path}: expected {entry}, got {ours.get(path)}" for path, entry in case.expected.items()
             if ours.get(path) != entry]
    assert not wrong, "not what BuildKit makes:\n" + "\n".join(wrong)


@dataclass(frozen=True)
class Refusal:
    """A Dockerfile our builder refuses (the message is `Dockerfile:N: <ours>`), and what buildah 1.28 does:
    refuses too (its error contains `buildah`) or builds it (None; its image then has `buildah_makes`)."""

    dockerfile: str
    ours: str
    buildah: str | None
    buildah_makes: dict[str, Entry | None] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=lambda: {"a.txt": "a\n", "b.txt": "bb\n", "x/a.txt": "xa\n"})



REFUSALS = {
    # BuildKit copies each source onto the one path (the last wins: moby/buildkit#1853); Docker's classic
    # builder refuses with this message, and so do we, unless dest is a directory already (implicit-parents).
    # buildah 1.28 makes /dest a directory holding both sources ...
    "several-into-new-path": Refusal("COPY a.txt b.txt /dest", MANY.format("COPY"), None,
                                     {"/dest/a.txt": text_file("a\n"), "/dest/b.txt": text_file("bb\n")}),
    # ... but for a wildcard's matches it does what BuildKit does: /dest is a file, the last match's copy
    "wildcard-into-new-path": Refusal("COPY *.txt /dest", MANY.format("COPY"), None, {"/dest": text_file("bb\n")}),
    "several-into-a-file": Refusal("ADD a.txt b.txt /etc/passwd", MANY.format("ADD"),
                                   "destination /etc/passwd already exists but is not a directory"),
    # buildah 1.28 knows no heredocs: it looks for a file named "<<EOF"
    "heredoc-and-file": Refusal("COPY a.txt <<EOF /dest\nhi\nEOF", MANY.format("COPY"),
                                'copier: stat: "/<<EOF": no such file or directory'),
    # BuildKit clones git sources (--keep-git-dir keeps .git); we do not, and say so; buildah 1.28 knows
    # neither the flag nor git sources (it tries an HTTP download)
    "keep-git-dir": Refusal("ADD --keep-git-dir=true https://git.invalid/r.git /src",
                            "ADD --keep-git-dir: this builder does not add git repositories",
                            "ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flag"),
    "git-source": Refusal("ADD https://git.invalid/r.git /src",
                          "ADD https://git.invalid/r.git: this builder does not add git repositories",
                          'reading "https://git.invalid/r.git"'),
    # --parents (stable in BuildKit since Dockerfile 1.14) is not implemented here; buildah 1.28 refuses it,
    # and --link, too
    "copy-parents": Refusal("COPY --parents x/a.txt /app/", "COPY --parents is not supported by this builder",
                            BUILDAH_COPY_FLAGS),
    "link-chown-name": Refusal("COPY --link --chown=app a.txt /a", "COPY --link --chown=app: --link copies into an "
                               "empty tree, which has no users or groups to look names up in", BUILDAH_COPY_FLAGS),
    "copy-url": Refusal("COPY https://example.com/a.txt /a", "source can't be a URL for COPY",
                        "source can't be a URL for COPY"),   # BuildKit's words, in all three
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refused_where_docker_refuses_or_builds_nonsense(ctx, buildah, tmp_path, name):
    refusal = REFUSALS[name]
    case = Case(f"FROM bbenv:1\n{refusal.dockerfile}\n", files=refusal.files)
    context = write_context(tmp_path / "context", case)
    with pytest.raises(DockerfileError) as info:
        build(ctx, BuildOptions(context_dir=context, tags=("app:1",), network="none", progress=lambda _: None))
    assert re.sub(r"^Dockerfile:[0-9-]+: ", "", info.value.message) == refusal.ours
    assert info.value.line_start == 2 and info.value.hint

    theirs = buildah.build(context, "app:1", check=False)
    output = theirs.stderr + theirs.stdout
    if refusal.buildah is None:
        assert theirs.returncode == 0, output
        buildah.export("app:1", tmp_path / "buildah-layout")
        tree = snapshot(unpack(tmp_path / "buildah-layout", "app:1", tmp_path / "buildah-rootfs"))
        assert {p: tree.get(p) for p in refusal.buildah_makes} == refusal.buildah_makes
    else:
        assert theirs.returncode != 0 and refusal.buildah in output, output


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
