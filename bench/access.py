"""What the permission check costs: the SSH dispatcher's check of a git push and of CLI commands, against a real
state DB with many users, apps and grants, beside what a push -> served deploy takes (bench/deploy.py).

The check is a few indexed SQLite reads and a click parse; it runs once per SSH request. Printed per check, and
as a share of the push -> served median of the last deploy bench (1.31 s; pass --deploy-s to use another).

    python bench/access.py [--reps 2000] [--deploy-s 1.31]
"""

from __future__ import annotations

import argparse
import os
import time

from _common import log, measured, median, report, workspace

from paas.access.model import User
from paas.access.service import GIT_NEEDS, require
from paas.access.store import add_user, grant
from paas.cli import cli
from paas.cli.permissions import authorize_words


def _populate(ctx, apps_n: int, users_n: int) -> None:
    from paas import apps

    for u in range(users_n):
        add_user(ctx.conn, f"user{u}")
    for a in range(apps_n):
        apps.create_app(ctx.conn, f"app{a}")
        for u in range(a % 7, users_n, 7):
            grant(ctx.conn, f"app{a}", f"user{u}", ("view", "deploy", "manage")[u % 3], "bench")


def _per_call_us(fn, reps: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        samples.append((time.perf_counter() - start) / reps * 1e6)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--deploy-s", type=float, default=1.31)
    args = parser.parse_args()
    with workspace("access") as (base, _):
        os.environ["PAAS_ROOT"] = str(base / "root")
        from paas.config import init_root, paths_from_env
        from paas.context import open_context

        init_root(paths_from_env())
        ctx = open_context()
        log("populating: 200 apps, 100 users, ~2900 grants")
        _populate(ctx, 200, 100)
        member = User("user14", "member")  # deploy on app0, app7, ...
        admin = User("root-ops", "admin")
        checks = {
            "git push (deploy on the app)": lambda: require(ctx.conn, member, GIT_NEEDS["git-receive-pack"], "app0"),
            "git fetch (view)": lambda: require(ctx.conn, member, GIT_NEEDS["git-upload-pack"], "app0"),
            "config:set APP K=V (parse + level)": lambda: authorize_words(cli, ["config:set", "app0", "K=V"], member,
                                                                          ctx.conn, True),
            "logs APP -n 5 (parse + level)": lambda: authorize_words(cli, ["logs", "app0", "-n", "5"], member,
                                                                     ctx.conn, True),
            "container:run (admin, by name)": lambda: authorize_words(cli, ["container:run", "--rm", "x"], admin,
                                                                      ctx.conn, True),
        }
        budget_us = args.deploy_s * 1e6
        print(f"\n{'check':40} {'per call':>10} {'share of a push->served deploy':>32}")
        for name, fn in checks.items():
            us = _per_call_us(fn, args.reps)
            print(f"{name:40} {us:8.1f} us {us / budget_us * 100:30.4f} %")
            report(measured(f"permission check: {name}", us, "us",
                            note=f"{us / budget_us * 100:.4f} % of a {args.deploy_s:g} s push->served deploy"))
        ctx.close()


if __name__ == "__main__":
    main()
