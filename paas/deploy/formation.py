"""How many containers of each process type a release runs: a pure decision from the release's processes, its
app.json `formation` and the app's stored formation (ps:scale), as Dokku makes it.

Dokku's rules (docs: processes/process-management "The web process" and "Scaling apps", appendices/file-formats/
app-json "Formation"; plugins/app-json setScale, plugins/ps updateScale):
- a first deploy starts one `web` process; every other type (worker, cron, custom, ...) starts only when
  app.json's formation or ps:scale asks for it;
- an app.json formation with any `quantity` manages the whole formation: each type it names runs that quantity
  (named without one: 1 for web, 0 for others), every type it does not name runs 0, and ps:scale is refused
  while it does; the quantities it set stay the app's formation when a later push drops the key;
- without one, ps:scale's stored counts apply, and a type never scaled runs its default.

One rule is ours: an app without a `web` type (a worker-only script) runs one process of its first Procfile
type unless it was scaled, where Dokku starts nothing until ps:scale; `release` never runs as a process (it is
the release phase, paas.deploy.pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..apps import MAX_SCALE
from ..errors import UserError

ONE_OFF_TYPES = frozenset({"release"})  # Procfile types that run once per deploy instead of staying up


def long_running(processes: Mapping[str, str | None]) -> list[str]:
    """The release's types that run as processes, web first, then in Procfile order."""
    types = [t for t in processes if t not in ONE_OFF_TYPES]
    return sorted(types, key=lambda t: (t != "web", types.index(t)))


def default_count(types: list[str], process_type: str) -> int:
    """What a type never scaled runs: web 1; without web, the first type 1; every other type 0."""
    if process_type == "web":
        return 1
    return 1 if "web" not in types and types and process_type == types[0] else 0


def counts(processes: Mapping[str, str | None], scale: Mapping[str, int] | None = None) -> dict[str, int]:
    """{type: count} for every long-running type (0 included): the stored scale where it names the type, else
    the type's default."""
    types = long_running(processes)
    return {t: int((scale or {}).get(t, default_count(types, t))) for t in types}


def manages(app_json_formation: Mapping[str, int | None] | None) -> bool:
    """Whether app.json's formation decides the formation (it gives at least one quantity)."""
    return any(q is not None for q in (app_json_formation or {}).values())


@dataclass(frozen=True)
class Formation:
    counts: dict[str, int]          # every long-running type, web first; 0 included
    source: str                     # "app.json", "ps:scale" or "default"
    store: dict[str, int] | None    # app.json's counts, kept as the app's formation once the release is live

    @property
    def running(self) -> dict[str, int]:
        return {t: n for t, n in self.counts.items() if n}

    def describe(self) -> str:
        """`web=1 worker=0 (default: one web process; ps:scale TYPE=N runs others)`, for the push output."""
        text = " ".join(f"{t}={n}" for t, n in self.counts.items()) or "no process types"
        why = {"app.json": "from app.json's formation",
               "ps:scale": "from ps:scale, the rest by default",
               "default": "by default"}[self.source]
        idle = [t for t, n in self.counts.items() if not n]
        if idle and self.source != "app.json":
            why += f"; `paas ps:scale APP {idle[0]}=1` starts {idle[0]}"
        return f"{text} ({why})"


def decide(processes: Mapping[str, str | None], app_json_formation: Mapping[str, int | None] | None,
           stored: Mapping[str, int] | None) -> Formation:
    """The formation of a release (see the module's rules). A UserError when app.json's formation scales up a
    type the release does not have, or asks for more than MAX_SCALE containers of one."""
    types = long_running(processes)
    stored = dict(stored or {})
    if manages(app_json_formation):
        wanted = dict(app_json_formation or {})
        for kind, quantity in wanted.items():
            if quantity is not None and quantity > MAX_SCALE:
                raise UserError(f"app.json formation asks for {quantity} {kind} processes, more than {MAX_SCALE}",
                                "ask for fewer")
            if kind in ONE_OFF_TYPES and quantity:
                raise UserError(f"app.json formation scales {kind}, which runs once per deploy (the release "
                                "phase), not as a process", f"remove {kind} from formation")
            if kind not in types and kind not in ONE_OFF_TYPES and quantity:
                raise UserError(f"app.json formation scales {kind}, which the Procfile does not define",
                                f"add `{kind}: COMMAND` to the Procfile, or remove {kind} from formation "
                                f"(types: {', '.join(types) or 'none'})")
        result = {t: (wanted[t] if wanted[t] is not None else (1 if t == "web" else 0)) if t in wanted else 0
                  for t in types}
        return Formation(result, "app.json", dict(result))
    source = "ps:scale" if any(t in stored for t in types) else "default"
    return Formation(counts(processes, stored), source, None)


def no_web_note(formation: Formation, processes: Mapping[str, str | None]) -> str | None:
    """The push output's line when the release runs no web process (so it gets no route), else None."""
    if formation.counts.get("web"):
        return None
    running = ", ".join(formation.running)
    verb = "runs" if len(formation.running) == 1 else "run"
    if "web" not in processes:
        if not running:
            first = next(iter(formation.counts), None)
            return ("no web process, and every other type is scaled to 0: nothing runs"
                    + (f" (ps:scale {first}=1 starts {first})" if first else ""))
        return (f"no web process: {running} {verb} without a route; ps:scale web=1 needs a web process in the "
                "Procfile")
    how = "app.json's formation" if formation.source == "app.json" else "ps:scale web=1"
    return f"web is scaled to 0: {running or 'nothing'} {verb} without a route until {how} runs web"
