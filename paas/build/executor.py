"""Execute a parsed Dockerfile: stages -> steps -> cached layers -> an image in the store.

One forward flow per stage: FROM (base image, scratch or an earlier stage) -> each instruction in order.
Metadata instructions (ENV, CMD, LABEL, …) change the image config only (history `empty_layer`);
filesystem steps (RUN, COPY, ADD, WORKDIR) mount an overlay of the stage's layers plus a fresh upper dir,
change it, and turn that upper dir into the step's layer (COPY/ADD --link write into an empty dir instead,
whose layer goes over the stage as BuildKit's MergeOp does). RUN gets, and every instruction expands
against, the stage's build environment (buildenv). Every filesystem step has a cache key:

    key = sha256(parent key, instruction after expansion, the build environment [RUN],
                 content hash of the selected files [COPY/ADD], user/workdir it runs with)

so a `touch` keeps the key (mtimes are not hashed), an ARG change only reaches steps after the ARG is
declared, and the cache (table build_cache) is shared by every build and app. Nothing is tagged until the
whole build succeeded. What `RUN --mount=type=cache` dirs hold is not in any key; those dirs belong to the
build's cache scope (an app, or `local`), see cachemounts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import state
from ..context import Context
from ..errors import BuildError, NotFound, UserError
from ..image.store import Image
from ..runtime import rootfs
from . import buildenv, cachemounts, imageconfig
from . import instructions as I
from .context import BuildContext
from .copyflags import copy_refusal, is_url, linked
from .ignore import IgnoreMatcher

if TYPE_CHECKING:
    from . import copy as copyops
    from .runstep import MountPoints

# Executing steps needs more modules (runstep -> runtime/network, copy, image.create) than a build that is
# all cache hits: those are imported where steps run, which keeps `paas build` of an unchanged app quick.

DEFAULT_SHELL = ("/bin/sh", "-c")
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# ARGs usable without a declaration, and never stored in the image (Docker's predefined proxy args)
PREDEFINED_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                   "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
# automatic platform ARGs (this builder makes linux/amd64 images only)
PLATFORM_ARGS = {"TARGETPLATFORM": "linux/amd64", "TARGETOS": "linux", "TARGETARCH": "amd64", "TARGETVARIANT": "",
                 "BUILDPLATFORM": "linux/amd64", "BUILDOS": "linux", "BUILDARCH": "amd64", "BUILDVARIANT": ""}
SUPPORTED_PLATFORMS = ("linux/amd64", "linux/x86_64", "amd64")
# the time of metadata steps on a base that records none (scratch): fixed, so rebuilds keep the image id
EPOCH = "1970-01-01T00:00:00Z"

Progress = Callable[[str], None]


def host_ca_bundle(config, *, wanted: bool = True) -> str | None:
    """The CA bundle RUN steps and ADD <url> trust: the host's (so builds work behind a TLS-inspecting proxy)
    unless the config's build.host_ca or the caller (`paas build --no-host-ca`) turns it off. A push's build and
    `paas build` both ask here."""
    return HOST_CA_BUNDLE if wanted and config.get("build.host_ca", True) else None


@dataclass(frozen=True)
class BuildOptions:
    context_dir: Path
    dockerfile: Path | None = None            # default: <context>/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    compression: str = "gzip"
    network: str = "bridge"                   # default network of RUN steps (RUN --network=none overrides)
    ca_bundle: str | None = HOST_CA_BUNDLE    # mounted read-only into RUN steps; None: off
    cache_scope: str = "local"                # whose RUN --mount=type=cache dirs: app:NAME, or local
    tenant: str | None = None                 # the app a deploy builds for: which store images it may name
    progress: Progress = print


@dataclass
class StepReport:
    stage: str
    number: str                               # "2/5"
    text: str
    cached: bool
    seconds: float
    changes_files: bool = False  # RUN, COPY, ADD, WORKDIR (the steps the cache is about)


@dataclass
class BuildResult:
    image: Image
    steps: list[StepReport]
    seconds: float

    @property
    def cached(self) -> int:
        """Filesystem steps taken from the cache."""
        return sum(1 for s in self.steps if s.changes_files and s.cached)

    @property
    def filesystem_steps(self) -> int:
        return sum(1 for s in self.steps if s.changes_files)


@dataclass
class StageState:
    """What a stage has built so far."""

    label: str
    config: dict                                # the image config's `config` object
    layers: list[dict] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    key: str = ""
    env: dict[str, str] = field(default_factory=dict)  # the build environment (buildenv): RUN's, expansions'
    cmd_set: bool = False
    author: str | None = None
    # when the stage's content last changed: the base image's time, then each layer's cache entry time.
    # History and image get these times, so a rebuild from cache gives the same image id.
    created: str | None = None


def digest_of(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def stage_label(stage: I.Stage) -> str:
    return stage.name or f"stage-{stage.index}"


# ---------------------------------------------------------------------------------------------
# planning (pure): which stages, in which order
# ---------------------------------------------------------------------------------------------

def expand_from(dockerfile: I.Dockerfile, global_scope: Mapping[str, str]) -> list[I.From]:
    return [I.expand(stage.from_, global_scope, dockerfile.escape) for stage in dockerfile]


def stage_refs(stage: I.Stage) -> list[str]:
    """Names a stage's COPY --from / RUN --mount from= point at (stage names, indexes or images)."""
    refs = []
    for instruction in stage.instructions:
        if isinstance(instruction, I.Copy) and instruction.from_:
            refs.append(instruction.from_)
        if isinstance(instruction, I.Run):
            refs += [m.from_ for m in instruction.mounts if m.from_]
    return refs


def needed_stages(dockerfile: I.Dockerfile, froms: list[I.From], target: str | None) -> list[int]:
    """Indexes of the stages the target needs, in Dockerfile order (others are not built)."""
    if target:
        chosen = dockerfile.stage(target)
        if chosen is None:
            names = ", ".join(s.name for s in dockerfile if s.name) or "none"
            raise UserError(f"target stage {target!r} not found", f"stages with names: {names}")
        last = chosen.index
    else:
        last = len(dockerfile) - 1
    needed: set[int] = set()
    todo = [last]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        for ref in [froms[index].image, *stage_refs(dockerfile[index])]:
            other = _stage_index(dockerfile, ref, before=index)
            if other is not None:
                todo.append(other)
    return sorted(needed)


def _stage_index(dockerfile: I.Dockerfile, ref: str, *, before: int) -> int | None:
    """The earlier stage that ref names (by name or index), or None when ref is an image."""
    stage = dockerfile.stage(ref)
    if stage is None:
        return None
    if stage.index >= before:
        if ref.isdigit():
            raise UserError(f"stage {ref} is used before it is defined", "refer only to earlier stages")
        return None  # a later stage's name: Docker treats it as an image name
    return stage.index


def global_scope(dockerfile: I.Dockerfile, build_args: Mapping[str, str]) -> dict[str, str]:
    scope = dict(PLATFORM_ARGS)
    for arg in dockerfile.global_args:
        arg = I.expand(arg, scope, dockerfile.escape)
        for name, default in arg.args:
            value = build_args.get(name, default)
            if value is not None:
                scope[name] = value
    return scope


# ---------------------------------------------------------------------------------------------
# the builder
# ---------------------------------------------------------------------------------------------

class Builder:
    def __init__(self, ctx: Context, opts: BuildOptions):
        self.ctx = ctx
        self.opts = opts
        self.progress = opts.progress
        self.work = Path(tempfile.mkdtemp(prefix="build-", dir=self._tmp_root()))
        self.holder = f"build:{self.work.name}"
        self.reports: list[StepReport] = []
        self.stages: dict[int, StageState] = {}
        self._mounts: list[Path] = []
        self._used_args: set[str] = set()
        self._hash_cache: dict = {}
        self.global_scope: dict[str, str] = {}

    def _tmp_root(self) -> Path:
        tmp = self.ctx.paths.tmp
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    # -- the flow -------------------------------------------------------------------------------
    def build(self) -> BuildResult:
        # GC waits while we build: our new layers are reachable only through the cache table until the
        # tag lands, and our step roots mount snapshots that nothing holds a reference to
        with self.ctx.store.writing():
            return self._build()

    def _build(self) -> BuildResult:
        started = time.monotonic()
        try:
            dockerfile_path = self.opts.dockerfile or self.opts.context_dir / "Dockerfile"
            if not self.opts.context_dir.is_dir():
                raise UserError(f"build context {self.opts.context_dir} is not a directory", "pass a directory")
            try:
                text = dockerfile_path.read_text()
            except FileNotFoundError:
                raise UserError(f"no Dockerfile at {dockerfile_path}", "pass -f PATH or add a Dockerfile") from None
            dockerfile = I.parse_dockerfile(text, dockerfile_path.name)
            ignore = IgnoreMatcher.for_context(self.opts.context_dir, dockerfile_path)
            self.context = BuildContext(self.opts.context_dir, ignore)
            self.global_scope = global_scope(dockerfile, self.opts.build_args)
            self._used_args.update(name for arg in dockerfile.global_args for name, _ in arg.args)
            froms = expand_from(dockerfile, self.global_scope)
            wanted = needed_stages(dockerfile, froms, self.opts.target)
            for index in wanted:
                self.stages[index] = self._build_stage(dockerfile, dockerfile[index], froms[index])
            final = self.stages[wanted[-1]]
            unused = sorted(set(self.opts.build_args) - self._used_args - set(PREDEFINED_ARGS))
            if unused:
                self.progress(f"warning: build-arg(s) not consumed by the Dockerfile: {', '.join(unused)}")
            image = self._write_image(final)
            return BuildResult(image, self.reports, time.monotonic() - started)
        finally:
            self._cleanup()

    def _build_stage(self, dockerfile: I.Dockerfile, stage: I.Stage, from_: I.From) -> StageState:
        label = stage_label(stage)
        total = len(stage.instructions) + 1
        t0 = time.monotonic()
        st = self._from(dockerfile, stage, from_)
        self._report(label, f"1/{total}", f"FROM {from_.image}" + (f" AS {from_.name}" if from_.name else ""),
                     True, time.monotonic() - t0, announce=True)
        triggers = (st.config.pop("OnBuild", None) or [])
        body: list[I.Instruction] = []
        for trigger in triggers:  # ONBUILD of the base image fires first, in order
            parsed = I.parse_dockerfile(f"FROM scratch\n{trigger}\n", "ONBUILD")
            body.extend(parsed[0].instructions)
        total += len(body)
        for number, instruction in enumerate([*body, *stage.instructions], start=2):
            self._step(dockerfile, st, instruction, label, f"{number}/{total}")
        return st

    # -- FROM ----------------------------------------------------------------------------------------
    def _from(self, dockerfile: I.Dockerfile, stage: I.Stage, from_: I.From) -> StageState:
        label = stage_label(stage)
        if from_.platform and from_.platform.lower() not in SUPPORTED_PLATFORMS:
            raise from_.error(f"platform {from_.platform!r} is not supported",
                              "this builder makes linux/amd64 images; drop --platform or use linux/amd64")
        ref = from_.image
        if ref.lower() == "scratch":
            config = imageconfig.with_default_path({})
            return StageState(label, config, key=digest_of("FROM", "scratch"), env=buildenv.from_config(config))
        other = _stage_index(dockerfile, ref, before=stage.index)
        if other is not None:
            base = self.stages[other]
            return StageState(label, json.loads(json.dumps(base.config)), list(base.layers), list(base.diff_ids),
                              list(base.history), key=digest_of("FROM stage", base.key),
                              env=buildenv.inherit(base.env, base.config), author=base.author,
                              created=base.created)
        image = self._image(ref, from_)
        config = imageconfig.with_default_path(json.loads(json.dumps(image.config.get("config") or {})))
        return StageState(label, config, list(image.layers), list(image.diff_ids),
                          list(image.config.get("history") or []), key=digest_of("FROM", image.config_digest),
                          env=buildenv.from_config(config), author=image.config.get("author"),
                          created=image.config.get("created"))

    def _image(self, ref: str, where: I.Instruction) -> Image:
        tenant = self.opts.tenant
        if tenant is not None:
            from .tenancy import refused_reference

            reason = refused_reference(ref, tenant)
            if reason:
                raise where.error(reason, "build from a stack (e.g. paas/stack-python:bookworm), one of your app's "
                                          "own images, or a registry image")
        try:
            return self.ctx.store.get(ref) if tenant is None else self.ctx.store.get_named(ref)
        except NotFound:
            pass
        from ..image.reference import parse as parse_ref
        from ..images import pull

        try:
            registry = parse_ref(ref).registry
        except UserError as exc:
            raise where.error(exc.message, exc.hint) from None
        if not registry:
            problem = (f"base image {ref!r} not found in the image store" if isinstance(where, I.From)
                       else f"{ref!r} is neither an earlier stage nor an image in the store")
            raise where.error(problem, "pull it (paas images:pull HOST/NAME:TAG), build a stack, "
                                       "or name a registry host")
        self.progress(f"pulling {ref}")
        pull(self.ctx, ref, progress=self.progress)
        return self.ctx.store.get(ref)

    # -- one instruction ---------------------------------------------------------------------------
    def _step(self, dockerfile: I.Dockerfile, st: StageState, instruction: I.Instruction, label: str,
              number: str) -> None:
        escape = dockerfile.escape
        if isinstance(instruction, I.Arg):
            self._arg(st, I.expand(instruction, st.env, escape))
            self._report(label, number, instruction.original, True, 0.0, quiet=True)
            return
        if not isinstance(instruction, (I.Run, I.Cmd, I.Entrypoint, I.Shell, I.Healthcheck, I.Onbuild)):
            instruction = I.expand(instruction, st.env, escape)
        text = _shown(instruction)
        t0 = time.monotonic()
        if isinstance(instruction, (I.Run, I.Copy, I.Add, I.Workdir)):
            cached = self._fs_step(st, instruction, label, number, text)
        else:
            imageconfig.apply(st, instruction, text)
            st.history[-1]["created"] = st.created or EPOCH
            st.env = buildenv.after(st.env, instruction, self.opts.build_args, self.global_scope)
            cached = True
        changes_files = isinstance(instruction, (I.Run, I.Copy, I.Add, I.Workdir))
        self._report(label, number, text, cached, time.monotonic() - t0, quiet=not changes_files,
                     changes_files=changes_files)

    def _arg(self, st: StageState, arg: I.Arg) -> None:
        self._used_args.update(name for name, _ in arg.args)
        st.env = buildenv.after(st.env, arg, self.opts.build_args, self.global_scope)
        st.history.append({"created": st.created or EPOCH, "created_by": arg.original.strip(),
                           "empty_layer": True})

    # -- filesystem steps --------------------------------------------------------------------------
    def _fs_step(self, st: StageState, instruction: I.Instruction, label: str, number: str, text: str) -> bool:
        inputs = self._step_inputs(st, instruction)
        key = digest_of(st.key, type(instruction).__name__, fingerprint(instruction), inputs)
        hit = None if self.opts.no_cache else self._cache_get(key)
        if hit is not None:
            self._append(st, hit, text, key)
            if isinstance(instruction, I.Workdir):
                st.config["WorkingDir"] = imageconfig.workdir(st.config, instruction.path)
            return True
        from .runstep import MountPoints, remove_mountpoints

        self._announce(label, number, text)
        with self._step_root(st, empty=linked(instruction)) as (root, upper, bundle):
            if isinstance(instruction, I.Run):
                created = self._run(st, instruction, root, bundle)
            elif isinstance(instruction, I.Workdir):
                created = MountPoints()
                _make_workdir(root, imageconfig.workdir(st.config, instruction.path), st.config.get("User"))
            else:
                created = MountPoints()
                self._copy(st, instruction, root)
            if rootfs.is_mounted(root):
                rootfs.unmount(root)
            remove_mountpoints(upper, created)
            entry = self._commit(upper, key, text)
        self._append(st, entry, text, key)
        if isinstance(instruction, I.Workdir):
            st.config["WorkingDir"] = imageconfig.workdir(st.config, instruction.path)
        return False

    def _step_inputs(self, st: StageState, instruction: I.Instruction) -> dict:
        """What besides the expanded text decides the step's result."""
        if isinstance(instruction, (I.Copy, I.Add)):
            refused = copy_refusal(instruction)
            if refused is not None:
                raise refused
        if isinstance(instruction, I.Run):
            return {"env": sorted(st.env.items()),
                    "user": st.config.get("User"), "workdir": st.config.get("WorkingDir"),
                    "shell": st.config.get("Shell"), "network": self._network(instruction),
                    "heredocs": [(h.name, h.data) for h in instruction.heredocs]}
        if isinstance(instruction, I.Workdir):
            return {"workdir": st.config.get("WorkingDir"), "user": st.config.get("User")}
        if isinstance(instruction, I.Add) and any(is_url(s) for s in instruction.sources):
            # without --checksum the content is unknown until downloaded: such a step never hits the cache
            return {"url": True, "checksum": instruction.checksum or secrets.token_hex(8)}
        assert isinstance(instruction, (I.Copy, I.Add))
        context, sources = self._sources(instruction)
        return {"content": context.content_hash(sources, cache=self._hash_cache) if sources else None,
                "names": [(s.name, s.is_dir) for s in sources], "workdir": st.config.get("WorkingDir"),
                "heredocs": [(h.name, h.data) for h in instruction.heredocs]}

    def _network(self, run: I.Run) -> str:
        if run.network == "none":
            return "none"
        return "none" if self.opts.network == "none" else "bridge"

    def _run(self, st: StageState, run: I.Run, root: Path, bundle: Path) -> MountPoints:
        from .runstep import StepRun, run_step

        shell = tuple(st.config.get("Shell") or DEFAULT_SHELL)
        argv = _run_argv(run, shell)
        env = buildenv.run_env(st.env)
        tmpfs = tuple(_abs_target(m.target, run) + ":exec" + (f",size={m.size}" if m.size else "")
                      for m in run.mounts if m.type == "tmpfs")
        caches = [cachemounts.plan(m, self.opts.cache_scope, _abs_target(m.target, run))
                  for m in run.mounts if m.type == "cache"]
        # the step's caches are held (shared, locked or private) for as long as it runs
        with cachemounts.acquire(self.ctx.paths.cache_mounts, caches, on_wait=self.progress) as cache_dirs:
            volumes = tuple(self._mount_volumes(run, root, iter(cache_dirs))) + self._heredoc_program(run)
            step = StepRun(argv, st.config, env=env, network=self._network(run), volumes=volumes, tmpfs=tmpfs,
                           ca_bundle=self._ca_bundle())
            return run_step(self.ctx, step, root=root, bundle=bundle,
                            on_line=lambda line: self.progress(f"  {line}"))

    def _heredoc_program(self, run: I.Run) -> tuple:
        """A `RUN <<EOF` program with a #! line, mounted read-only at /dev/pipes/EOF."""
        from ..runtime.spec import Volume

        program = heredoc_program(run)
        if program is None:
            return ()
        pipes = Path(tempfile.mkdtemp(prefix="pipes-", dir=self.work))
        (pipes / program.name).write_text(program.data)
        os.chmod(pipes / program.name, 0o755)
        return (Volume(str(pipes / program.name), f"{PIPES}/{program.name}", read_only=True),)

    def _ca_bundle(self) -> str | None:
        bundle = self.opts.ca_bundle
        return bundle if bundle and os.path.isfile(bundle) else None

    def _mount_volumes(self, run: I.Run, root: Path, cache_dirs: Iterator[Path]) -> Iterator:
        from ..runtime.spec import Volume

        for mount in run.mounts:
            if mount.type == "cache":  # cache_dirs: one per cache mount, in order (cachemounts.acquire)
                yield Volume(str(next(cache_dirs)), _abs_target(mount.target, run), read_only=mount.readonly)
            elif mount.type == "bind":
                if mount.from_:
                    source_root = self._from_root(mount.from_, run)
                    source = rootfs.resolve_in_root(source_root, mount.source or "/")
                else:
                    context = self.context
                    source = context.host_path(context.resolve_sources([mount.source or "."])[0].rel)
                if not mount.readonly:
                    raise run.error("RUN --mount=type=bind,rw is not supported",
                                    "mount it read-only and copy what you need to change")
                yield Volume(str(source), _abs_target(mount.target, run), read_only=True)
            elif mount.type == "tmpfs":
                continue  # see _tmpfs
            else:
                raise run.error(f"RUN --mount=type={mount.type} is not supported",
                                "use type=cache or type=bind")

    def _copy(self, st: StageState, instruction: I.Copy | I.Add, root: Path) -> None:
        """Path sources (context or --from), then URLs, then heredocs, in the order BuildKit adds them."""
        from . import copy as copyops

        workdir = st.config.get("WorkingDir") or "/"
        unpack = isinstance(instruction, I.Add) and instruction.unpack is not False
        keep_owner = isinstance(instruction, I.Copy) and bool(instruction.from_)
        try:
            chown = copyops.resolve_chown(root, instruction.chown) if instruction.chown else None
            spec = copyops.CopySpec(dest=instruction.dest, workdir=workdir, chown=chown,
                                    chmod=copyops.parse_chmod(instruction.chmod) if instruction.chmod else None,
                                    keep_owner=keep_owner, unpack=unpack, keyword=instruction.KEYWORD)
            context, sources = self._sources(instruction)
            urls = [s for s in instruction.sources if is_url(s)]
            count = len(sources) + len(urls) + len(instruction.heredocs)
            copyops.check_many_sources(root, spec, count, spec.keyword)
        except BuildError as exc:
            raise instruction.error(exc.message, exc.hint) from None
        if sources:
            copyops.copy_sources(context, sources, root, spec)
        if urls:
            from .urlfetch import netns_fetcher  # downloads from a namespace on the build's bridge, not the host

            with netns_fetcher(self.ctx, ca_file=self._ca_bundle()) as fetch:
                for url in urls:
                    copyops.add_url(url, root, spec, checksum=getattr(instruction, "checksum", None), fetch=fetch)
        if instruction.heredocs:
            self._copy_heredocs(instruction, root, spec)

    def _copy_heredocs(self, instruction: I.Copy | I.Add, root: Path, spec: copyops.CopySpec) -> None:
        from . import copy as copyops

        staging = Path(tempfile.mkdtemp(prefix="heredoc-", dir=self.work))
        for doc in instruction.heredocs:
            (staging / doc.name).write_text(doc.data)
            os.chmod(staging / doc.name, 0o644)
        context = BuildContext(staging)
        sources = context.resolve_sources([doc.name for doc in instruction.heredocs])
        copyops.copy_sources(context, sources, root, spec)

    def _sources(self, instruction: I.Copy | I.Add) -> tuple[BuildContext, list]:
        """The path sources (URLs left out) as the context resolves them; none for URLs/heredocs only."""
        from_ = getattr(instruction, "from_", None)
        if from_:
            context = BuildContext(self._from_root(from_, instruction), scoped_symlinks=True)
        else:
            context = self.context
        patterns = [s for s in instruction.sources if not is_url(s)]
        if not patterns:
            return context, []
        try:
            return context, context.resolve_sources(patterns)
        except BuildError as exc:
            raise instruction.error(exc.message, exc.hint) from None

    def _from_root(self, ref: str, where: I.Instruction) -> Path:
        """A read-only view of a stage's or image's root filesystem (COPY --from, RUN --mount from=)."""
        stage_index = None
        for index, built in self.stages.items():
            if built.label == ref.lower() or str(index) == ref:
                stage_index = index
        if stage_index is not None:
            layers, diff_ids = self.stages[stage_index].layers, self.stages[stage_index].diff_ids
        else:
            image = self._image(ref, where)
            layers, diff_ids = image.layers, image.diff_ids
        lowers = self._snapshots(layers, diff_ids)
        if not lowers:
            empty = Path(tempfile.mkdtemp(prefix="empty-", dir=self.work))
            return empty
        if len(lowers) == 1:
            return lowers[0]
        target = Path(tempfile.mkdtemp(prefix="from-", dir=self.work))
        from .. import linux
        options = "lowerdir=" + ":".join(str(p) for p in reversed(lowers))
        linux.mount("overlay", target, "overlay", linux.MS_RDONLY, options)
        self._mounts.append(target)
        return target

    # -- layers, cache, snapshots ---------------------------------------------------------------------
    def _snapshots(self, layers: list[dict], diff_ids: list[str]) -> list[Path]:
        paths = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            paths.append(self.ctx.snapshots.extract_layer(layer, diff_id))
        return paths

    @contextlib.contextmanager
    def _step_root(self, st: StageState, *, empty: bool = False) -> Iterator[tuple[Path, Path, Path]]:
        """(root the step changes, upper dir that becomes its layer, bundle dir); with empty (COPY --link),
        root is the upper dir itself: an empty tree, the stage's files out of reach."""
        step_dir = Path(tempfile.mkdtemp(prefix="step-", dir=self.work))
        root, upper, work, bundle = (step_dir / n for n in ("rootfs", "upper", "work", "bundle"))
        if empty:
            upper.mkdir()
            os.chmod(upper, 0o755)
            root = upper
        else:
            lowers = self._snapshots(st.layers, st.diff_ids)
            (step_dir / "empty").mkdir()
            rootfs.mount_overlay(self.ctx.paths.snapshots, lowers, upper, work, root, step_dir / "empty")
        try:
            yield root, upper, bundle
        finally:
            if rootfs.is_mounted(root):
                rootfs.unmount(root)
            shutil.rmtree(step_dir, ignore_errors=True)

    def _commit(self, upper: Path, key: str, text: str) -> dict:
        """The upper dir as a layer blob (none when the step changed nothing), recorded in the cache."""
        from ..image.create import commit_layer, now_rfc3339

        if not any(upper.iterdir()):
            entry = {"layer": None, "diff_id": None}
        else:
            layer, diff_id = commit_layer(self.ctx.store, upper, compression=self.opts.compression)
            entry = {"layer": layer, "diff_id": diff_id}
            self._keep_as_snapshot(upper, diff_id)
        layer = entry["layer"]
        entry["created"] = now_rfc3339()
        with state.transaction(self.ctx.conn):
            self.ctx.conn.execute(
                "INSERT OR REPLACE INTO build_cache (key, layer_digest, media_type, size, diff_id, created_by, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, layer and layer["digest"], layer and layer["mediaType"], layer and layer["size"],
                 entry["diff_id"], text[:500], entry["created"]))
        return entry

    def _keep_as_snapshot(self, upper: Path, diff_id: str) -> None:
        """The step's upper dir becomes the layer's snapshot (as containerd's overlay snapshotter commits
        an active snapshot): the next step mounts it as a lowerdir instead of extracting the new blob.

        It holds exactly the layer's content: the tar was written from it, with overlay whiteouts and
        opaque markers in the form snapshots use."""
        target = self.ctx.snapshots.path(diff_id)
        if target.exists():
            return
        try:
            os.rename(upper, target)
        except OSError:  # another build made it meanwhile, or another filesystem: extract when needed
            return
        upper.mkdir()  # the step root's cleanup expects it

    def _cache_get(self, key: str) -> dict | None:
        row = self.ctx.conn.execute("SELECT * FROM build_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if row["layer_digest"] and not self.ctx.store.blobs.exists(row["layer_digest"]):
            return None  # the blob was collected: run the step again
        with state.transaction(self.ctx.conn):
            self.ctx.conn.execute("UPDATE build_cache SET last_used_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') "
                                  "WHERE key = ?", (key,))
        if not row["layer_digest"]:
            return {"layer": None, "diff_id": None, "created": row["created_at"]}
        return {"layer": {"mediaType": row["media_type"], "digest": row["layer_digest"], "size": row["size"]},
                "diff_id": row["diff_id"], "created": row["created_at"]}

    def _append(self, st: StageState, entry: dict, text: str, key: str) -> None:
        st.created = entry["created"]
        history = {"created": st.created, "created_by": text}
        if entry["layer"] is None:
            history["empty_layer"] = True
        else:
            st.layers.append(entry["layer"])
            st.diff_ids.append(entry["diff_id"])
        st.history.append(history)
        st.key = key

    def _write_image(self, st: StageState) -> Image:
        config = imageconfig.image_config(st.config, st.diff_ids, st.history, author=st.author,
                                          created=st.created or EPOCH)
        store = self.ctx.store
        with store.writing():
            image = store.add_image(st.layers, config)
            for tag in self.opts.tags:
                store.tag(tag, image)
        return store.load_image(image.digest, self.opts.tags[0] if self.opts.tags else None)

    # -- output ------------------------------------------------------------------------------------------
    def _announce(self, label: str, number: str, text: str) -> None:
        self.progress(f"[{label} {number}] {text}")

    def _report(self, label: str, number: str, text: str, cached: bool, seconds: float, *,
                quiet: bool = False, announce: bool = False, changes_files: bool = False) -> None:
        self.reports.append(StepReport(label, number, text, cached, seconds, changes_files))
        if quiet:
            self.progress(f"[{label} {number}] {text}")
        elif announce:
            self.progress(f"[{label} {number}] {text}")
        elif cached:
            self.progress(f"[{label} {number}] {text}  CACHED")
        else:
            self.progress(f"  DONE {seconds:.1f}s")

    def _cleanup(self) -> None:
        for target in reversed(self._mounts):
            with contextlib.suppress(Exception):
                rootfs.unmount(target)
        shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _make_workdir(root: Path, path: str, user: str | None) -> None:
    """mkdir -p inside the step root; what it creates belongs to the stage's USER (as BuildKit does)."""
    from ..runtime import spec

    owner = spec.resolve_user(user, rootfs.read_in_root(root, "/etc/passwd"), rootfs.read_in_root(root, "/etc/group"))
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = posixpath.join(current, part)
        target = rootfs.resolve_in_root(root, current)
        if target.is_dir():
            continue
        if os.path.lexists(target):
            raise BuildError(f"WORKDIR {path}: {current} exists and is not a directory", "pick another path")
        target.mkdir(mode=0o755)
        os.chmod(target, 0o755)  # not subject to the umask
        os.chown(target, owner.uid, owner.gid)


def _abs_target(target: str, where: I.Instruction) -> str:
    if not target:
        raise where.error("RUN --mount needs target=PATH", "add target=/path")
    return target if target.startswith("/") else posixpath.join("/", target)


PIPES = "/dev/pipes"  # where `RUN <<EOF` with a #! line finds its program (BuildKit's path)


def heredoc_program(run: I.Run) -> I.InlineFile | None:
    """The heredoc of a `RUN <<EOF` whose body starts with `#!`: BuildKit writes it to /dev/pipes/EOF
    (mode 0755) and runs that file through the shell, so its interpreter line counts."""
    doc = _only_heredoc(run)
    return doc if doc is not None and doc.data.startswith("#!") else None


def _only_heredoc(run: I.Run) -> I.InlineFile | None:
    """The heredoc when the shell-form command is nothing but one heredoc word (`RUN <<EOF`)."""
    if run.json_form or len(run.heredocs) != 1:
        return None
    first = (run.command[0] if run.command else "").strip()
    if first.startswith("<<") and first.lstrip("<-").strip("'\"") == run.heredocs[0].name:
        return run.heredocs[0]
    return None


def _run_argv(run: I.Run, shell: tuple[str, ...]) -> tuple[str, ...]:
    """RUN's argv as BuildKit's dispatchRun makes it (the SHELL prepended to every shell form)."""
    if run.json_form:
        return tuple(run.command)
    script = run.command[0] if run.command else ""
    only = _only_heredoc(run)
    if only is not None:  # `RUN <<EOF`: the heredoc is the script, or the program to run
        return (*shell, f"{PIPES}/{only.name}" if heredoc_program(run) else only.data)
    if run.heredocs:  # the shell reads the heredocs itself: give it the whole text
        script = script + "\n" + "".join(f"{doc.data}{doc.name}\n" for doc in run.heredocs)
    return (*shell, script)


def fingerprint(instruction: I.Instruction) -> dict:
    """The instruction after expansion, without where it was written (moving a line keeps the cache)."""
    fields = dataclasses.asdict(instruction)
    for where in ("file", "line_start", "line_end", "original"):
        fields.pop(where, None)
    return fields


def _shown(instruction: I.Instruction) -> str:
    """The instruction as progress and history show it (one line)."""
    text = " ".join(instruction.original.split())
    return text if len(text) <= 200 else text[:197] + "..."


def build(ctx: Context, opts: BuildOptions) -> BuildResult:
    return Builder(ctx, opts).build()
