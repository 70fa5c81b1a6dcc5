"""paas.receive.ensure_repo: the bare repository of an app, made on its first push, also when several first
pushes of one app arrive at once (paasd's SSH sessions are threads of one process)."""

from __future__ import annotations

import os
import threading

from paas.receive import ensure_repo, repo_path


def test_first_pushes_at_once_make_one_repository(ctx):
    threads_n = 8
    start = threading.Barrier(threads_n)
    made, errors = [], []

    def first_push() -> None:
        start.wait()
        try:
            made.append(ensure_repo(ctx, "twin"))
        except Exception as exc:  # noqa: BLE001 - any failure of one thread is the finding
            errors.append(exc)

    threads = [threading.Thread(target=first_push) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert made == [repo_path(ctx, "twin")] * threads_n
    repo = repo_path(ctx, "twin")
    assert (repo / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert os.access(repo / "hooks" / "pre-receive", os.X_OK)
    assert sorted(p.name for p in repo.parent.iterdir()) == ["twin.git"]  # no temp dir left beside it
    assert sorted(p.name for p in (repo / "hooks").iterdir() if p.name.startswith(".")) == []


def test_an_existing_repository_is_kept(ctx):
    repo = ensure_repo(ctx, "shop")
    (repo / "description").write_text("mine\n")
    assert ensure_repo(ctx, "shop") == repo
    assert (repo / "description").read_text() == "mine\n"
