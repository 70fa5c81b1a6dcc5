"""What every command needs: paths, config, state connection, image store — opened lazily."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

from . import state
from .config import Config, Paths, load_config, paths_from_env
from .errors import UserError


@dataclass
class Context:
    paths: Paths

    @cached_property
    def config(self) -> Config:
        config = load_config(self.paths)
        if config.get("network.bridge") is None and config.get("network.subnet") is None:
            config = self._with_claimed_network(config)
        return config

    def _with_claimed_network(self, config: Config) -> Config:
        """A config naming no network gets the root's claimed bridge and subnet, claiming a free pair on first use
        (root only: the claim is host-wide) — a root used without `paas init` never falls back to another's."""
        from .network import firewall, owner

        if not (self.paths.root / "images").is_dir():  # not a data root (yet): nothing to claim for
            return config
        claim = owner.claimed(self.conn)
        if claim is None:
            if os.geteuid() != 0:
                return config
            with firewall.host_lock():
                claim = owner.pick_and_claim(self.conn)
        network = {**config.data.get("network", {}), "bridge": claim[0], "subnet": str(claim[1])}
        return Config({**config.data, "network": network})

    @cached_property
    def conn(self):
        return state.connect(self.paths.state_db)

    @cached_property
    def store(self):
        from .image.store import ImageStore
        return ImageStore(self.paths.images, self.conn)

    @cached_property
    def snapshots(self):
        from .image.layer import LayerLimits
        from .image.snapshots import Snapshots
        return Snapshots(self.paths.snapshots, self.store, self.conn, limits=LayerLimits.from_config(self.config))

    @cached_property
    def host_facts(self):
        from .runtime.host import probe
        return probe()

    @cached_property
    def runtime(self):
        """The OCI runtime to use here (crun, or runc where crun cannot run)."""
        from .runtime.host import choose_runtime
        return choose_runtime(self.host_facts, str(self.config.get("runtime", "crun")))

    def registry(self, host: str):
        from .image.reference import api_host
        from .image.registry import RegistryClient
        return RegistryClient(api_host(host), self.config.registry(host),
                              retries=int(self.config.get("images.retries", 4)),
                              backoff=float(self.config.get("images.retry_backoff_s", 0.5)))

    def close(self) -> None:
        if "conn" in self.__dict__:
            self.conn.close()


def open_context(root: str | os.PathLike | None = None, *, require_init: bool = True) -> Context:
    paths = paths_from_env(root)
    if require_init and not (paths.root / "images").is_dir():
        raise UserError(f"data root {paths.root} is not initialised", "run `paas init` first (PAAS_ROOT moves it)")
    context = Context(paths)
    _ = context.config  # a broken config file is reported by every command, not only those reading it
    return context
