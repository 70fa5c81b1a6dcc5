"""RUN --mount=type=cache with the real builder: private per app, and BuildKit's locked/private sharing
between builds that run at the same time (separate processes, as two deploys or `paas build`s are)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from paas.build import cachemounts
from paas.build.executor import BuildOptions, build

REPO = Path(__file__).resolve().parents[2]
# one build in its own process; prints the last layer of the image as JSON on its last line
BUILD_SCRIPT = """
import json, sys
from pathlib import Path
from paas.build.executor import BuildOptions, build
from paas.context import open_context

context_dir, tag, scope, n = sys.argv[1:]
ctx = open_context()
try:
    result = build(ctx, BuildOptions(context_dir=Path(context_dir), tags=(tag,), build_args={"N": n},
                                     network="none", cache_scope=scope, progress=print))
    print(json.dumps({"layer": result.image.layers[-1], "diff_id": result.image.diff_ids[-1]}))
finally:
    ctx.close()
"""
# what a step writes to its cache: when it started and ended (seconds since boot, the same clock everywhere)
TIMED = ('echo "$N start $(cut -d" " -f1 /proc/uptime)" >> /c/times-$N && sleep 2 && '
         'echo "$N end $(cut -d" " -f1 /proc/uptime)" >> /c/times-$N')


def context_with(tmp_path: Path, name: str, dockerfile: str) -> Path:
    context = tmp_path / name
    context.mkdir()
    (context / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip("\n"))
    return context


def build_in(ctx, context: Path, scope: str, who: str):
    return build(ctx, BuildOptions(context_dir=context, tags=(f"{who}:1",), build_args={"WHO": who},
                                   network="none", no_cache=True, cache_scope=scope, progress=lambda _: None))


def last_layer_file(ctx, result, name: str) -> str:
    snapshot = ctx.snapshots.extract_layer(result.image.layers[-1], result.image.diff_ids[-1])
    return (snapshot / name).read_text()


def cache_dir(ctx, scope: str, ident: str) -> Path:
    return cachemounts.CacheMount(scope, ident, ident).cache_dir(ctx.paths.cache_mounts)


def test_each_app_has_its_own_cache_and_cannot_touch_another_apps(ctx, runtime_name, bb_image, tmp_path):
    context = context_with(tmp_path, "app", """
        FROM bb:1
        ARG WHO
        RUN --mount=type=cache,target=/root/.cache/pip \\
            --mount=type=cache,target=/owned,id=/root/.cache/pip,uid=1000,gid=1000,mode=0700 \\
            ls -A /root/.cache/pip > /seen && stat -c %u:%g:%a /owned > /owned-stat && \\
            if [ "$WHO" = b ]; then \\
                rm -rf /root/.cache/pip/* && chown 1234:1234 /root/.cache/pip && chmod 0777 /root/.cache/pip; \\
            fi && \\
            echo "$WHO" > /root/.cache/pip/from-$WHO
    """)
    first = build_in(ctx, context, "app:a", "a")
    assert last_layer_file(ctx, first, "seen") == ""
    assert last_layer_file(ctx, first, "owned-stat") == "1000:1000:700\n"  # uid/gid/mode: made so

    other = build_in(ctx, context, "app:b", "b")  # same target, same Dockerfile, another app
    assert last_layer_file(ctx, other, "seen") == ""  # nothing of a's

    again = build_in(ctx, context, "app:a", "a")  # a's next build: its own file, untouched by b
    assert last_layer_file(ctx, again, "seen") == "from-a\n"
    a_dir, b_dir = cache_dir(ctx, "app:a", "/root/.cache/pip") / "0", cache_dir(ctx, "app:b", "/root/.cache/pip") / "0"
    assert (a_dir / "from-a").read_text() == "a\n" and not (a_dir / "from-b").exists()
    a_stat, b_stat = a_dir.stat(), b_dir.stat()
    assert (a_stat.st_uid, a_stat.st_gid, stat.S_IMODE(a_stat.st_mode)) == (0, 0, 0o755)
    assert (b_stat.st_uid, b_stat.st_gid, stat.S_IMODE(b_stat.st_mode)) == (1234, 1234, 0o777)  # b's own copy
    assert sorted(p.name for p in b_dir.iterdir()) == ["from-b"]
    # the layer cache is unaffected: the cache's content is in no key, so an unchanged step is a hit
    cached = build(ctx, BuildOptions(context_dir=context, tags=("a:2",), build_args={"WHO": "a"}, network="none",
                                     cache_scope="app:a", progress=lambda _: None))
    assert cached.image.digest == again.image.digest


def concurrent_builds(ctx, context: Path, scope: str, count: int = 2) -> list[tuple[str, dict]]:
    """`count` builds of `context` started at once in their own processes: (output, last layer) each."""
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, str(context), f"con:{n}", scope, str(n)],
                              cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for n in range(1, count + 1)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out
        results.append((out, json.loads(out.strip().splitlines()[-1])))
    return results


def intervals(directory: Path) -> dict[str, tuple[float, float]]:
    """{N: (start, end)} from the times-N files the steps wrote into one cache instance."""
    found = {}
    for path in directory.glob("times-*"):
        lines = dict((line.split()[1], float(line.split()[2])) for line in path.read_text().splitlines())
        found[path.name.removeprefix("times-")] = (lines["start"], lines["end"])
    return found


def test_locked_makes_a_second_build_wait_for_the_first(ctx, bb_image, tmp_path):
    context = context_with(tmp_path, "locked", f"""
        FROM bb:1
        ARG N
        RUN --mount=type=cache,target=/c,sharing=locked {TIMED}
    """)
    outputs = concurrent_builds(ctx, context, "app:a")
    spans = intervals(cache_dir(ctx, "app:a", "/c") / "0")
    assert sorted(spans) == ["1", "2"]  # both used the one instance ...
    (s1, e1), (s2, e2) = sorted(spans.values())
    assert e1 <= s2, spans  # ... one after the other
    assert sum("waiting for cache mount /c: another build holds it (sharing=locked)" in out
               for out, _ in outputs) == 1


def test_private_gives_builds_at_the_same_time_their_own_dirs(ctx, bb_image, tmp_path):
    context = context_with(tmp_path, "private", f"""
        FROM bb:1
        ARG N
        RUN --mount=type=cache,target=/c,sharing=private {TIMED} && ls /c > /seen
    """)
    outputs = concurrent_builds(ctx, context, "app:a")
    instances = [d for d in sorted(cache_dir(ctx, "app:a", "/c").iterdir()) if d.is_dir()]
    assert [d.name for d in instances] == ["0", "1"]
    spans = {n: span for d in instances for n, span in intervals(d).items()}
    assert sorted(spans) == ["1", "2"]  # one build in each instance
    (s1, e1), (s2, e2) = sorted(spans.values())
    assert s2 < e1, spans  # and they ran at the same time
    for n, (_, layer) in enumerate(outputs, start=1):
        seen = (ctx.snapshots.extract_layer(layer["layer"], layer["diff_id"]) / "seen").read_text()
        assert seen == f"times-{n}\n"  # neither saw the other's file
    assert not any("waiting for cache mount" in out for out, _ in outputs)


def test_destroying_an_app_drops_its_caches_only(ctx):
    from paas import apps
    from paas.deploy import destroy_app

    for app in ("gone", "kept"):
        apps.create_app(ctx.conn, app)
        with cachemounts.acquire(ctx.paths.cache_mounts, [cachemounts.CacheMount(f"app:{app}", "/c", "/c")]) as dirs:
            (dirs[0] / "f").write_text(app)
    destroy_app(ctx, "gone")
    assert not cache_dir(ctx, "app:gone", "/c").exists()  # a new app named `gone` starts with an empty cache
    assert (cache_dir(ctx, "app:kept", "/c") / "0" / "f").read_text() == "kept"
    destroy_app(ctx, "kept")
