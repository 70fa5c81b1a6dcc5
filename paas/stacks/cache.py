"""The machine cache (`PAAS_STACK_CACHE`, e.g. /var/cache/paas/stacks): every built stack root kept as its layer
tar plus a `.json` sidecar, keyed by paas.stacks.plan.rootfs_key, so another data root on this machine imports it
into its image store (a verified copy, the same image digest) instead of running mmdebstrap. One entry per
stack, suite and compression is kept; the builds of one key take its lock, so parallel builds run mmdebstrap
once."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import locks
from ..context import Context
from ..errors import PaasError
from ..image.create import new_config
from ..image.store import Image
from .plan import built_from, image_config
from .table import Progress, Stack, quiet

log = logging.getLogger("paas.stacks")
CACHE_ENV = "PAAS_STACK_CACHE"


def wait_for(path: Path, what: str, progress: Progress = quiet):
    """An exclusive lock on path, waited for as long as another process holds it (it is building what we
    would build: mmdebstrap takes a minute or a few), saying so once in progress."""
    return locks.hold(path, on_wait=lambda: progress(f"waiting for another process building {what} ({path})"))


@dataclass(frozen=True)
class MachineCache:
    dir: Path

    @classmethod
    def from_env(cls) -> MachineCache | None:
        value = os.environ.get(CACHE_ENV)
        return cls(Path(value)) if value else None

    def layer_path(self, name: str, suite: str, key: str, compression: str) -> Path:
        extension = "zst" if compression == "zstd" else "gz"
        return self.dir / f"stack-{name}-{suite}-{key[:24]}.tar.{extension}"

    def lock(self, name: str, suite: str, key: str, progress: Progress = quiet):
        """Held while loading or building this entry (and saving it)."""
        return wait_for(self.dir / f".lock-stack-{name}-{suite}-{key[:24]}", f"the {name} stack ({suite})", progress)

    def load(self, ctx: Context, stack: Stack, suite: str, key: str, compression: str, tag: str,
             inputs: str) -> Image | None:
        """The cached layer as a new image in the store, or None (missing, unreadable, corrupt)."""
        layer_file = self.layer_path(stack.name, suite, key, compression)
        try:
            meta = json.loads(Path(f"{layer_file}.json").read_text())
            if meta.get("key") != key:
                return None
            with ctx.store.writing():
                ctx.store.blobs.put_file(layer_file, expected=meta["layer"]["digest"], what="cached stack layer")
                config = new_config([meta["diff_id"]], created=meta["created"],
                                    **image_config(stack, inputs, suite, meta.get("archive")))
                image = ctx.store.add_image([meta["layer"]], config)
                ctx.store.tag(tag, image)
                return ctx.store.load_image(image.digest, tag)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, PaasError) as exc:
            log.warning("stack cache entry %s unusable (%s); building instead", layer_file, exc)
            return None

    def save(self, ctx: Context, stack: Stack, suite: str, key: str, compression: str, image: Image) -> Path:
        """Copy the image's layer into the cache (atomically), dropping older entries of this stack and suite."""
        self.dir.mkdir(parents=True, exist_ok=True)
        layer_file = self.layer_path(stack.name, suite, key, compression)
        layer = image.layers[0]
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)
        os.close(fd)
        try:
            shutil.copyfile(ctx.store.blobs.path(layer["digest"]), tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, layer_file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        meta = {"key": key, "stack": stack.name, "suite": suite, "layer": layer, "diff_id": image.diff_ids[0],
                "created": image.config.get("created"), "packages": list(stack.packages),
                "archive": built_from(image)}
        Path(f"{layer_file}.json.tmp").write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(f"{layer_file}.json.tmp", f"{layer_file}.json")
        suffix = layer_file.name[layer_file.name.index(".tar"):]
        for old in self.dir.glob(f"stack-{stack.name}-*{suffix}"):
            if old != layer_file and _same_slot(old.name, stack.name, suite):
                for path in (Path(f"{old}.json"), old, self.dir / f".lock-{old.name.split('.')[0]}"):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return layer_file


def _same_slot(file_name: str, name: str, suite: str) -> bool:
    """Whether a cache file holds this stack and suite: `stack-NAME-SUITE-KEY…`, or `stack-NAME-KEY…` from
    before stacks had suites (all bookworm, of an older recipe)."""
    middle = file_name.split(".")[0].removeprefix(f"stack-{name}-")
    return middle.startswith(f"{suite}-") or bool(re.fullmatch(r"[0-9a-f]{24}", middle))
